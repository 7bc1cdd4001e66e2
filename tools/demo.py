#!/usr/bin/env python3
"""Demo data and verification with confluent-kafka (independent of kafka-backup).

  demo.py produce BOOTSTRAP TOPIC      realistic orders over the last hour; prints "START END"
                                       (epoch ms of a 20-minute window in the middle)
  demo.py verify SOURCE TOPIC TARGET TARGET_TOPIC START END
                                       compares the window of the source with the target
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
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
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
                         timestamp=start + i * 600 + rng.randint(-2000, 2000))  # a little out of order
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(30)
    print(start + 20 * 60_000, start + 40 * 60_000)


def read_all(bootstrap, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-verify", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
    records, idle_since = [], time.time()
    while time.time() - idle_since < 3:
        batch = consumer.consume(500, 0.5)
        if batch:
            idle_since = time.time()
        for msg in batch:
            if not msg.error():
                records.append((msg.partition(), msg.key(), msg.value(), msg.headers() or [], msg.timestamp()[1]))
    consumer.close()
    return sorted(records, key=lambda r: r[0]), len(partitions)


def verify(source, source_topic, target, target_topic, start, end):
    start, end = int(start), int(end)
    originals, _ = read_all(source, source_topic)
    expected = [r for r in originals if start <= r[4] <= end]
    restored, partitions = read_all(target, target_topic)
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


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"produce": produce, "verify": verify}.get(command, lambda *_: sys.exit(__doc__))(*args)
