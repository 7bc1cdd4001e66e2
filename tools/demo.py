#!/usr/bin/env python3
"""Demo data and verification with confluent-kafka (independent of kafka-backup).

  demo.py produce BOOTSTRAP TOPIC      realistic orders over the last hour; prints START, the
                                       epoch ms of 40 minutes ago
  demo.py verify SOURCE TOPIC TARGET TARGET_TOPIC START
                                       compares the records of the source from START on with the target
  demo.py commit-group BOOTSTRAP TOPIC GROUP
                                       commits GROUP three quarters through each partition
  demo.py verify-group SOURCE TOPIC TARGET TARGET_TOPIC GROUP START
                                       checks that GROUP reads first, on the target, the record it
                                       would read next on the source among those from START on,
                                       in every partition
"""
import json
import random
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3
RECORDS = 6000


def produce(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(30)
    # Idempotence keeps each partition in produce order even when a slow broker makes the client
    # retry a batch (without it a retried batch lands after later ones).
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4",
                         "enable.idempotence": True})
    failed = []
    rng = random.Random(42)
    now = int(time.time() * 1000)
    start = now - 3_600_000
    for i in range(RECORDS):
        customer = f"customer-{rng.randint(1, 400)}"
        order = {"order_id": i, "customer": customer, "amount": round(rng.uniform(5, 500), 2),
                 "items": rng.randint(1, 9), "currency": rng.choice(["EUR", "USD", "GBP"])}
        headers = [("trace-id", f"{rng.getrandbits(64):016x}".encode()), ("source", b"web")]
        if i % 10 == 0:
            headers.append(("retry", None))          # a null header value
        if i % 25 == 0:
            headers.append(("source", b"replay"))    # a duplicate header key
        value = None if i % 97 == 0 else json.dumps(order).encode()  # some tombstones
        producer.produce(topic, key=customer.encode(), value=value, headers=headers,
                         on_delivery=lambda error, _msg: error and failed.append(error),
                         timestamp=start + i * 600 + rng.randint(-2000, 2000))  # a little out of order
        if i % 1000 == 0:
            producer.poll(0)
    # Every record must be on the broker before the next step reads the topic to its end.
    if producer.flush(120):
        sys.exit("produce: records still undelivered after 120 s")
    if failed:
        sys.exit(f"produce: {len(failed)} records were refused, the first with: {failed[0]}")
    print(start + 20 * 60_000)


def read_all(bootstrap, topic):
    """Every record as (partition, offset, key, value, headers, timestamp), in partition order: each
    partition is read to its high watermark (a slow broker is waited for, up to 120 s)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-verify", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
    records, deadline = [], time.time() + 120
    reached = {p: end == 0 for p, end in ends.items()}
    while not all(reached.values()):
        if time.time() > deadline:
            sys.exit(f"reading {topic}: partitions {[p for p, done in reached.items() if not done]} did not reach their end")
        for msg in consumer.consume(500, 0.5):
            if msg.error():
                continue
            records.append((msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers() or [],
                            msg.timestamp()[1]))
            if msg.offset() + 1 >= ends[msg.partition()]:
                reached[msg.partition()] = True
    consumer.close()
    return sorted(records, key=lambda r: r[:2]), len(partitions)


def without_offset(record):
    return (record[0],) + record[2:]


def verify(source, source_topic, target, target_topic, start):
    start = int(start)
    originals, _ = read_all(source, source_topic)
    expected = [without_offset(r) for r in originals if start <= r[5]]
    restored, partitions = read_all(target, target_topic)
    restored = [without_offset(r) for r in restored]
    if restored != expected:
        print(f"MISMATCH: expected {len(expected)} records, the target has {len(restored)}")
        for want, got in zip(expected, restored):
            if want != got:
                print(f"  first difference: expected {want}\n                    got      {got}")
                break
        sys.exit(1)
    nulls = sum(1 for r in restored if r[2] is None)
    print(f"verified with confluent-kafka: {len(restored)} of {len(originals)} records fall in the window and all "
          f"{len(restored)} are on {target_topic} ({partitions} partitions) with identical partition, order, key, "
          f"value ({nulls} tombstones), headers (duplicates and null values included) and timestamp")


def commit_group(bootstrap, topic, group):
    """Commits GROUP three quarters through each partition (inside the restored window), once the
    topic shows every produced record (its high watermarks add up to RECORDS). The offsets come
    from the watermarks: the topic has no transactions, so every offset below the high watermark
    holds a record."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    deadline = time.time() + 120
    while True:
        marks = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(PARTITIONS)]
        if sum(high - low for low, high in marks) >= RECORDS:
            break
        if time.time() > deadline:
            sys.exit(f"commit-group: {topic} shows {sum(h - l for l, h in marks)} of {RECORDS} records after 120 s")
        time.sleep(0.5)
    commits = [TopicPartition(topic, p, low + (high - low) * 3 // 4) for p, (low, high) in enumerate(marks)]
    consumer.commit(offsets=commits, asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
    consumer.close()
    if [c.offset for c in committed] != [c.offset for c in commits]:
        sys.exit(f"commit-group: committed {committed}, wanted {commits}")


def committed_offsets(bootstrap, topic, group):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    committed = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
    consumer.close()
    return {c.partition: c.offset for c in committed}


def next_on_target(bootstrap, topic, group):
    """Per partition, the first record a consumer of GROUP reads (from its committed offset)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "error"})
    consumer.assign([TopicPartition(topic, p, -1000) for p in range(PARTITIONS)])  # -1000: committed
    first, deadline = {}, time.time() + 30
    while len(first) < PARTITIONS and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.partition() in first:
            continue
        if msg.error():
            sys.exit(f"group {group} on {topic}: {msg.error()}")
        first[msg.partition()] = (msg.key(), msg.value(), msg.headers() or [], msg.timestamp()[1])
    consumer.close()
    return first


def next_on_source(bootstrap, topic, group, start):
    """Per partition, the first record at or after GROUP's committed offset that falls in the
    restored window (timestamp >= START): the record the group must read first on the target."""
    committed = committed_offsets(bootstrap, topic, group)
    first = {}
    for partition, offset, key, value, headers, timestamp in read_all(bootstrap, topic)[0]:
        if partition not in first and offset >= committed[partition] and timestamp >= start:
            first[partition] = (key, value, headers, timestamp)
    return first


def verify_group(source, source_topic, target, target_topic, group, start):
    expected = next_on_source(source, source_topic, group, int(start))
    resumed = next_on_target(target, target_topic, group)
    if resumed != expected or len(expected) != PARTITIONS:
        sys.exit(f"MISMATCH: group {group} would read {expected} next on the source, but reads {resumed} on the target")
    print(f"verified with confluent-kafka: consumer group {group} reads first, in each of the {PARTITIONS} partitions "
          f"of {target_topic}, exactly the record it would have read next on {source_topic}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    commands = {"produce": produce, "verify": verify, "commit-group": commit_group, "verify-group": verify_group}
    commands.get(command, lambda *_: sys.exit(__doc__))(*args)
