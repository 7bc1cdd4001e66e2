#!/usr/bin/env python3
"""Reference Kafka client for tests: confluent-kafka (librdkafka), independent of our own code.

Usage: refclient.py COMMAND < request.json > response.json
Commands (JSON in, JSON out; bytes are hex strings, null stays null):
  create-topic  {"bootstrap", "topic", "partitions", "configs": {k: v}}
  produce       {"bootstrap", "topic", "config": {librdkafka props}, "records": [RECORD]}
                -> {"records": [RECORD with partition, offset]}
  produce-transactions {"bootstrap", "topic", "partition", "transactions": [{"count", "commit": bool}]}
                one transactional producer; each transaction committed or aborted in turn
  consume       {"bootstrap", "topic", "partitions": [int], "expected": int, "timeout_s": float}
                -> {"records": [RECORD]} in partition, offset order
  first-as-groups {"bootstrap", "topic", "groups": [str], "timeout_s"} -> {"first": {group: RECORD}}
                each group's consumer (subscribed, auto.offset.reset=error, so it must start at the
                group's committed offset) reads one record; nothing is committed
  commit        {"bootstrap", "group", "offsets": [{"topic", "partition", "offset"}]}
  committed     {"bootstrap", "group", "topic", "partitions": [int]} -> {"offsets": {partition: offset}}
  hold-group    interactive: first stdin line {"bootstrap", "topic", "group"}; joins the group,
                prints {"joined": true} once assigned, stays a member until stdin closes
  mock-cluster  interactive: starts librdkafka's in-process mock cluster (1 broker), prints
                {"bootstrap"}, then per stdin line {"topic", "partition", "count", "size"} produces
                that many records ("k{i}" / size bytes) and prints {"ok": true}; exits at EOF.
RECORD: {"partition", "offset", "key", "value", "headers": [[key, value]], "timestamp", "timestamp_type"}
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def to_hex(data):
    return None if data is None else data.hex()


def from_hex(text):
    return None if text is None else bytes.fromhex(text)


TIMESTAMP_TYPES = {0: "none", 1: "create_time", 2: "log_append_time"}


def create_topic(req):
    admin = AdminClient({"bootstrap.servers": req["bootstrap"]})
    topic = NewTopic(req["topic"], req.get("partitions", 1), 1, config=req.get("configs", {}))
    for future in admin.create_topics([topic]).values():
        future.result(30)
    return {}


def produce(req):
    config = {"bootstrap.servers": req["bootstrap"], "linger.ms": 100}
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
    producer = Producer({"bootstrap.servers": req["bootstrap"], "transactional.id": "refclient-tx"})
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


def group_consumer(bootstrap, group, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "error", "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    return consumer


def first_as_groups(req):
    consumers = {g: group_consumer(req["bootstrap"], g, req["topic"]) for g in req["groups"]}
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
                if msg.error().code() == -191:  # partition EOF
                    continue
                raise SystemExit(f"group {group}: {msg.error()}")
            first[group] = record_of(msg)
    for consumer in consumers.values():
        consumer.close()
    return {"first": first}


def hold_group():
    req = json.loads(sys.stdin.readline())
    consumer = group_consumer(req["bootstrap"], req["group"], req["topic"])
    deadline = time.time() + 30
    while not consumer.assignment() and time.time() < deadline:
        consumer.poll(0.2)
    print(json.dumps({"joined": bool(consumer.assignment())}), flush=True)
    sys.stdin.read()
    consumer.close()


def consume(req):
    consumer = Consumer({
        "bootstrap.servers": req["bootstrap"],
        "group.id": "refclient-reader",
        "enable.auto.commit": False,
        "isolation.level": req.get("isolation", "read_committed"),
    })
    consumer.assign([TopicPartition(req["topic"], p, -2) for p in req["partitions"]])
    records = []
    deadline = time.time() + req.get("timeout_s", 20)
    while len(records) < req["expected"] and time.time() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:  # partition EOF
                continue
            raise KafkaException(msg.error())
        records.append(record_of(msg))
    consumer.close()
    records.sort(key=lambda r: (r["partition"], r["offset"]))
    return {"records": records}


def commit(req):
    consumer = Consumer({"bootstrap.servers": req["bootstrap"], "group.id": req["group"],
                         "enable.auto.commit": False})
    offsets = [TopicPartition(o["topic"], o["partition"], o["offset"]) for o in req["offsets"]]
    consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()
    return {}


def committed(req):
    consumer = Consumer({"bootstrap.servers": req["bootstrap"], "group.id": req["group"],
                         "enable.auto.commit": False})
    wanted = [TopicPartition(req["topic"], p) for p in req["partitions"]]
    result = consumer.committed(wanted, timeout=20)
    consumer.close()
    return {"offsets": {str(tp.partition): tp.offset for tp in result}}


def mock_cluster():
    producer = Producer({"test.mock.num.brokers": 1, "linger.ms": 5, "bootstrap.servers": ""})
    broker = list(producer.list_topics(timeout=10).brokers.values())[0]
    print(json.dumps({"bootstrap": f"{broker.host}:{broker.port}"}), flush=True)
    produced = 0
    for line in sys.stdin:
        command = json.loads(line)
        for _ in range(command["count"]):
            producer.produce(command["topic"], key=b"k%d" % produced, value=b"v" * command["size"],
                             partition=command["partition"])
            produced += 1
            producer.poll(0)
        if producer.flush(30):
            raise SystemExit("mock cluster: produce did not complete")
        print(json.dumps({"ok": True}), flush=True)


COMMANDS = {"create-topic": create_topic, "produce": produce, "produce-transactions": produce_transactions,
            "consume": consume, "first-as-groups": first_as_groups,
            "commit": commit, "committed": committed}
INTERACTIVE = {"mock-cluster": mock_cluster, "hold-group": hold_group}

if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] in INTERACTIVE:
        INTERACTIVE[sys.argv[1]]()
        raise SystemExit(0)
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(__doc__)
    json.dump(COMMANDS[sys.argv[1]](json.load(sys.stdin)), sys.stdout)
