#!/usr/bin/env python3
"""Parses Prometheus text exposition from stdin with the official client's parser (independent of
kafka-backup) and prints it as JSON: {family: {"type": ..., "samples": [[name, labels, value], ...]}}.
An exposition the parser rejects exits non-zero with its error."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = {
        "type": family.type,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }
print(json.dumps(families))
