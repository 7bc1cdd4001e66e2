#!/usr/bin/env python3
"""Reference Kafka client for tests: confluent-kafka (librdkafka), independent of our own code.

Usage: refclient.py COMMAND < request.json > response.json
Commands (JSON in, JSON out; bytes are hex strings, null stays null). Every request may carry
"client": {librdkafka properties} (security settings, for instance), merged into each client's config.
  create-topic  {"bootstrap", "topic", "partitions", "configs": {k: v}}
  produce       {"bootstrap", "topic", "config": {librdkafka props}, "records": [RECORD]}
                -> {"records": [RECORD with partition, offset]}
  produce-transactions {"bootstrap", "topic", "partition", "transactions": [{"count", "commit": bool}]}
                one transactional producer; each transaction committed or aborted in turn
  consume       {"bootstrap", "topic", "partitions": [int], "isolation", "timeout_s": float}
                -> {"records": [RECORD]} in partition, offset order: every partition read to its end
                (partition EOF at the high watermark, or the last stable offset with read_committed);
                fails, never returns part, when an end is not reached within timeout_s (default 60)
  delete-records {"bootstrap", "topic", "partition", "before"} moves the log start to `before`
  delete-topic  {"bootstrap", "topic"} deletes the topic and waits until the metadata no longer lists it
  topic-configs {"bootstrap", "topic"} -> {"configs": {name: value}} of the non-default configs
  list-topics   {"bootstrap"} -> {"topics": [name]}
  unsecured-jwt {"sub", "lifetime_s"} -> {"token"}: an unsigned JWT (alg none) that Kafka's unsecured
                OAUTHBEARER validator accepts, issued now, expiring after lifetime_s (negative: expired)
  acl           {"bootstrap", "resource": "topic"|"group"|"cluster", "name", "principal", "operation",
                "permission": "ALLOW"|"DENY"} adds a literal ACL (operation: READ, WRITE, DESCRIBE, ...)
                for the principal, from any host
  describe-acls {"bootstrap"} -> {"acls": [{"resource_type", "resource_name", "pattern_type", "principal",
                "host", "operation", "permission"}]}: every binding of the cluster (names as kafka-acls.sh)
  elect-preferred-leaders {"bootstrap", "topic", "partitions": [int]} -> {"elected": bool}: moves
                each partition's leadership back to its preferred replica; false while a preferred
                replica is not available yet (still catching up after a restart)
  describe-topic {"bootstrap", "topic"} -> {"partitions": [{"partition", "leader", "replicas"}]}
  first-as-groups {"bootstrap", "topic", "groups": [str], "timeout_s"} -> {"first": {group: RECORD}}
                each group's consumer (subscribed, auto.offset.reset=error, so it must start at the
                group's committed offset) reads one record; nothing is committed
  commit        {"bootstrap", "group", "offsets": [{"topic", "partition", "offset"}]}
  commit-many   {"bootstrap", "commits": [{"group", "offsets": [...]}]} each group's commit, in turn
  committed     {"bootstrap", "group", "topic", "partitions": [int]} -> {"offsets": {partition: offset}}
  hold-group    interactive: first stdin line {"bootstrap", "topic", "group", "group_protocol"}; joins
                the group (classic by default, or "consumer" for a KIP-848 group),
                prints {"joined": true} once assigned, stays a member until stdin closes
RECORD: {"partition", "offset", "key", "value", "headers": [[key, value]], "timestamp", "timestamp_type"}
"""
import json
import sys
import time

from confluent_kafka import Consumer, ElectionType, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic


def to_hex(data):
    return None if data is None else data.hex()


def from_hex(text):
    return None if text is None else bytes.fromhex(text)


TIMESTAMP_TYPES = {0: "none", 1: "create_time", 2: "log_append_time"}


def config_of(req, **settings):
    """A client config: the bootstrap, the command's own settings, then the request's "client"."""
    config = {"bootstrap.servers": req["bootstrap"]}
    config.update(settings)
    config.update(req.get("client", {}))
    return config


def create_topic(req):
    admin = AdminClient(config_of(req))
    topic = NewTopic(req["topic"], req.get("partitions", 1), req.get("replication_factor", -1),
                     config=req.get("configs", {}))
    for future in admin.create_topics([topic]).values():
        future.result(30)
    return {}


def delete_topic(req):
    admin = AdminClient(config_of(req))
    for future in admin.delete_topics([req["topic"]]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while req["topic"] in admin.list_topics(timeout=10).topics:
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {req['topic']} is still listed 30 s after its deletion")
        time.sleep(0.2)
    return {}


def produce(req):
    config = config_of(req, **{"linger.ms": 100})
    config.update(req.get("config", {}))
    producer = Producer(config)
    delivered = [None] * len(req["records"])
    errors = []

    def report(index):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(str(err))
            else:
                delivered[index] = (msg.partition(), msg.offset())
        return on_delivery

    for index, record in enumerate(req["records"]):
        kwargs = {
            "key": from_hex(record.get("key")),
            "value": from_hex(record.get("value")),
            "headers": [(k, from_hex(v)) for k, v in record.get("headers", [])],
            "on_delivery": report(index),
        }
        if record.get("partition") is not None:
            kwargs["partition"] = record["partition"]
        if record.get("timestamp") is not None:
            kwargs["timestamp"] = record["timestamp"]
        producer.produce(req["topic"], **kwargs)
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining or errors:
        raise SystemExit(f"produce failed: {remaining} undelivered, errors: {errors[:3]}")
    out = []
    for record, (partition, offset) in zip(req["records"], delivered):
        out.append(dict(record, partition=partition, offset=offset))
    return {"records": out}


def produce_transactions(req):
    producer = Producer(config_of(req, **{"transactional.id": req.get("transactional_id", "refclient-tx")}))
    producer.init_transactions(30)
    for number, transaction in enumerate(req["transactions"]):
        producer.begin_transaction()
        for i in range(transaction["count"]):
            outcome = "committed" if transaction["commit"] else "aborted"
            producer.produce(req["topic"], key=b"t%d-%d" % (number, i), value=outcome.encode(), partition=req["partition"])
        producer.flush(30)
        if transaction["commit"]:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    return {}


def record_of(msg):
    ts_type, ts = msg.timestamp()
    return {
        "partition": msg.partition(),
        "offset": msg.offset(),
        "key": to_hex(msg.key()),
        "value": to_hex(msg.value()),
        "headers": [[k, to_hex(v)] for k, v in (msg.headers() or [])],
        "timestamp": ts,
        "timestamp_type": TIMESTAMP_TYPES[ts_type],
    }


def group_consumer(req, group):
    settings = {"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "error"}
    if req.get("group_protocol", "classic") == "consumer":
        settings["group.protocol"] = "consumer"  # KIP-848: the broker runs the assignment
    else:
        settings["session.timeout.ms"] = 6000
    consumer = Consumer(config_of(req, **settings))
    consumer.subscribe([req["topic"]])
    return consumer


def first_as_groups(req):
    consumers = {g: group_consumer(req, g) for g in req["groups"]}
    first = {}
    deadline = time.time() + req.get("timeout_s", 30)
    while len(first) < len(consumers) and time.time() < deadline:
        for group, consumer in consumers.items():
            if group in first:
                continue
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise SystemExit(f"group {group}: {msg.error()}")
            first[group] = record_of(msg)
    for consumer in consumers.values():
        consumer.close()
    return {"first": first}


def hold_group():
    req = json.loads(sys.stdin.readline())
    consumer = group_consumer(req, req["group"])
    deadline = time.time() + 30
    while not consumer.assignment() and time.time() < deadline:
        consumer.poll(0.2)
    print(json.dumps({"joined": bool(consumer.assignment())}), flush=True)
    sys.stdin.read()
    consumer.close()


def consume(req):
    consumer = Consumer(config_of(req, **{
        "group.id": "refclient-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": req.get("isolation", "read_committed"),
    }))
    consumer.assign([TopicPartition(req["topic"], p, -2) for p in req["partitions"]])
    records = []
    at_end = set()
    timeout = req.get("timeout_s", 60)
    deadline = time.time() + timeout
    while len(at_end) < len(req["partitions"]):
        if time.time() > deadline:
            missing = sorted(set(req["partitions"]) - at_end)
            raise SystemExit(f"consume: partitions {missing} of {req['topic']} did not reach their end "
                             f"within {timeout} s ({len(records)} records read)")
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
                continue
            raise KafkaException(msg.error())
        at_end.discard(msg.partition())
        records.append(record_of(msg))
    consumer.close()
    records.sort(key=lambda r: (r["partition"], r["offset"]))
    return {"records": records}


def delete_records(req):
    admin = AdminClient(config_of(req))
    wanted = [TopicPartition(req["topic"], req["partition"], req["before"])]
    for future in admin.delete_records(wanted).values():
        future.result(30)
    return {}


def topic_configs(req):
    admin = AdminClient(config_of(req))
    resource = ConfigResource(ConfigResource.Type.TOPIC, req["topic"])
    entries = list(admin.describe_configs([resource]).values())[0].result(30)
    return {"configs": {name: entry.value for name, entry in entries.items()
                        if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}}


def elect_preferred_leaders(req):
    admin = AdminClient(config_of(req))
    wanted = [TopicPartition(req["topic"], p) for p in req["partitions"]]
    results = admin.elect_leaders(ElectionType.PREFERRED, wanted).result(60)
    errors = {f"{tp.topic}-{tp.partition}": error for tp, error in results.items()
              if error is not None and error.code() != KafkaError.ELECTION_NOT_NEEDED}
    failed = {tp: str(e) for tp, e in errors.items() if e.code() != KafkaError.PREFERRED_LEADER_NOT_AVAILABLE}
    if failed:
        raise SystemExit(f"elect-preferred-leaders: {failed}")
    return {"elected": not errors}


def acl(req):
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType
    kind = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "cluster": ResourceType.BROKER}[req["resource"]]
    binding = AclBinding(kind, req["name"], ResourcePatternType.LITERAL, req["principal"], "*",
                         AclOperation[req["operation"]], AclPermissionType[req["permission"]])
    admin = AdminClient(config_of(req))  # kept alive until the futures resolve
    for future in admin.create_acls([binding]).values():
        future.result(30)
    return {}


def describe_acls(req):
    from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType, ResourceType
    admin = AdminClient(config_of(req))
    any_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    bindings = admin.describe_acls(any_filter).result(30)
    return {"acls": sorted([{"resource_type": b.restype.name, "resource_name": b.name,
                             "pattern_type": b.resource_pattern_type.name, "principal": b.principal,
                             "host": b.host, "operation": b.operation.name, "permission": b.permission_type.name}
                            for b in bindings], key=lambda b: json.dumps(b, sort_keys=True))}


def unsecured_jwt(req):
    import base64
    encode = lambda claims: base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    now = int(time.time())
    claims = {"sub": req["sub"], "iat": now - 60, "exp": now + req.get("lifetime_s", 3600)}
    return {"token": f"{encode({'alg': 'none'})}.{encode(claims)}."}


def list_topics(req):
    return {"topics": sorted(AdminClient(config_of(req)).list_topics(timeout=30).topics)}


def describe_topic(req):
    admin = AdminClient(config_of(req))
    topic = admin.list_topics(req["topic"], timeout=30).topics[req["topic"]]
    return {"partitions": [{"partition": p.id, "leader": p.leader, "replicas": p.replicas}
                           for p in sorted(topic.partitions.values(), key=lambda p: p.id)]}


def commit(req):
    consumer = Consumer(config_of(req, **{"group.id": req["group"], "enable.auto.commit": False}))
    offsets = [TopicPartition(o["topic"], o["partition"], o["offset"]) for o in req["offsets"]]
    consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()
    return {}


def commit_many(req):
    for entry in req["commits"]:
        commit({**req, "group": entry["group"], "offsets": entry["offsets"]})
    return {}


def committed(req):
    consumer = Consumer(config_of(req, **{"group.id": req["group"], "enable.auto.commit": False}))
    wanted = [TopicPartition(req["topic"], p) for p in req["partitions"]]
    result = consumer.committed(wanted, timeout=20)
    consumer.close()
    return {"offsets": {str(tp.partition): tp.offset for tp in result}}


COMMANDS = {"create-topic": create_topic, "produce": produce, "produce-transactions": produce_transactions,
            "consume": consume, "first-as-groups": first_as_groups, "delete-records": delete_records,
            "delete-topic": delete_topic,
            "topic-configs": topic_configs, "describe-topic": describe_topic, "list-topics": list_topics, "unsecured-jwt": unsecured_jwt, "acl": acl, "describe-acls": describe_acls,
            "elect-preferred-leaders": elect_preferred_leaders,
            "commit": commit, "commit-many": commit_many, "committed": committed}
INTERACTIVE = {"hold-group": hold_group}

if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] in INTERACTIVE:
        INTERACTIVE[sys.argv[1]]()
        raise SystemExit(0)
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(__doc__)
    json.dump(COMMANDS[sys.argv[1]](json.load(sys.stdin)), sys.stdout)
