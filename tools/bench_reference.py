#!/usr/bin/env python3
"""Benchmark helper: fills a topic fast, and times a raw consume by librdkafka (the reference).

  bench_reference.py fill BOOTSTRAP TOPIC RECORDS SIZE PARTITIONS DATA [COMPRESSION]
      RECORDS values of SIZE bytes spread round-robin over PARTITIONS; DATA is "random" (segment
      compression gains nothing) or "text" (JSON-like order events that zlib compresses ~6x, like
      typical application topics); the producer compresses its batches with COMPRESSION (none by
      default; lz4, zstd, snappy or gzip as most production producers do). Prints the seconds the
      produce took (the values are made before the clock starts): the raw produce reference
  bench_reference.py consume BOOTSTRAP TOPIC RECORDS PARTITIONS
      prints "seconds bytes" of a full read of every partition
  bench_reference.py topics BOOTSTRAP PREFIX COUNT RECORDS
      COUNT one-partition topics PREFIX-0.. (created together), RECORDS small records in each
  bench_reference.py groups BOOTSTRAP TOPIC COUNT PREFIX
      COUNT consumer groups PREFIX-0.. commit offset i (group i) on partition 0 of TOPIC, with the
      admin client (many at a time)
"""
import json
import os
import random
import sys
import time

from confluent_kafka import ConsumerGroupTopicPartitions, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def text_value(size, rng):
    """A JSON order event padded to `size` bytes: field names repeat, numbers and ids vary."""
    event = {"order_id": rng.randrange(10**12), "customer": f"customer-{rng.randrange(50000)}",
             "status": rng.choice(["created", "paid", "shipped", "delivered", "cancelled"]),
             "currency": rng.choice(["EUR", "USD", "GBP"]), "items": []}
    while len(json.dumps(event)) < size:
        event["items"].append({"sku": f"SKU-{rng.randrange(100000):06d}", "quantity": rng.randrange(1, 9),
                               "price_cents": rng.randrange(100, 100000)})
    return json.dumps(event).encode()[:size]


def fill(bootstrap, topic, records, size, partitions, data, compression="none"):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1048576,
                         "queue.buffering.max.kbytes": 1048576, "compression.type": compression})
    # 64 MiB of distinct values: repeats lie far beyond any codec's window, in every partition.
    rng, distinct = random.Random(42), 65536
    if data == "random":
        pool = [os.urandom(size) for _ in range(distinct)]
    elif data == "text":
        pool = [text_value(size, rng) for _ in range(distinct)]
    else:
        raise SystemExit(f"unknown data {data!r}; expected random or text")
    started = time.monotonic()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, key=b"%d" % i, value=pool[i % len(pool)], partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    if producer.flush(300):
        raise SystemExit("fill: produce did not complete")
    print(f"{time.monotonic() - started:.3f}")


def consume(bootstrap, topic, records, partitions):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-reference",
                         "enable.auto.commit": False, "fetch.max.bytes": 52428800,
                         "max.partition.fetch.bytes": 8388608})
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
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


def topics(bootstrap, prefix, count, records):
    names = [f"{prefix}-{i}" for i in range(count)]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 1, 1) for name in names]).values():
        future.result(60)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for name in names:
        for i in range(records):
            producer.produce(name, key=b"%d" % i, value=b"record %d of %s" % (i, name.encode()))
        producer.poll(0)
    if producer.flush(300):
        raise SystemExit("topics: produce did not complete")


def groups(bootstrap, topic, count, prefix):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for start in range(0, count, 100):
        futures = []
        for i in range(start, min(start + 100, count)):
            wanted = ConsumerGroupTopicPartitions(f"{prefix}-{i}", [TopicPartition(topic, 0, i)])
            futures.extend(admin.alter_consumer_group_offsets([wanted]).values())
        for future in futures:
            future.result()


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "fill":
        fill(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), args[5], *args[6:7])
    elif command == "consume":
        consume(args[0], args[1], int(args[2]), int(args[3]))
    elif command == "topics":
        topics(args[0], args[1], int(args[2]), int(args[3]))
    elif command == "groups":
        groups(args[0], args[1], int(args[2]), args[3])
    else:
        raise SystemExit(__doc__)
