#!/usr/bin/env python3
"""Benchmark helper: fills a topic fast, and times a raw consume by librdkafka (the reference).

  bench_reference.py fill BOOTSTRAP TOPIC RECORDS SIZE     one partition, random values
  bench_reference.py consume BOOTSTRAP TOPIC RECORDS       prints "seconds bytes" of a full read
"""
import os
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def fill(bootstrap, topic, records, size):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1048576,
                         "queue.buffering.max.kbytes": 1048576, "compression.type": "none"})
    pool = [os.urandom(size) for _ in range(4096)]  # random values: segment compression gains nothing
    for i in range(records):
        while True:
            try:
                producer.produce(topic, key=b"%d" % i, value=pool[i % len(pool)], partition=0)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    if producer.flush(300):
        raise SystemExit("fill: produce did not complete")


def consume(bootstrap, topic, records):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-reference",
                         "enable.auto.commit": False, "fetch.max.bytes": 52428800,
                         "max.partition.fetch.bytes": 8388608})
    consumer.assign([TopicPartition(topic, 0, -2)])
    seen = total = 0
    started = time.monotonic()
    while seen < records:
        for msg in consumer.consume(num_messages=10000, timeout=1.0):
            if msg.error():
                continue
            seen += 1
            total += len(msg.value()) + len(msg.key() or b"")
    elapsed = time.monotonic() - started
    consumer.close()
    print(f"{elapsed:.3f} {total}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "fill":
        fill(args[0], args[1], int(args[2]), int(args[3]))
    elif command == "consume":
        consume(args[0], args[1], int(args[2]))
    else:
        raise SystemExit(__doc__)
