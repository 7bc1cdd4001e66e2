// Share groups (KIP-932) through Apache Kafka's own Java clients, for the tests: the reference
// client (confluent-kafka 2.16) has no share-group calls. Run as a single-file program on the broker's jars:
//   java -cp '.test-infra/kafka/libs/*' tools/ShareGroups.java offsets BOOTSTRAP GROUP
//     prints {"offsets": [{"topic", "partition", "start_offset"}, ...]}, Admin#listShareGroupOffsets
//   java ... tools/ShareGroups.java alter BOOTSTRAP GROUP TOPIC PARTITION OFFSET
//     sets the start offset of the (empty) GROUP, Admin#alterShareGroupOffsets; prints {}
//   java ... tools/ShareGroups.java hold BOOTSTRAP GROUP TOPIC
//     a KafkaShareConsumer member of GROUP on TOPIC: prints {"joined": true} once the group lists
//     it, and leaves when its standard input closes

import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ShareGroups {
    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "offsets" -> offsets(args[1], args[2]);
            case "alter" -> alter(args[1], args[2], args[3], Integer.parseInt(args[4]), Long.parseLong(args[5]));
            case "hold" -> hold(args[1], args[2], args[3]);
            default -> throw new IllegalArgumentException("unknown command " + args[0]);
        }
    }

    static Admin admin(String bootstrap) {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        return Admin.create(props);
    }

    static void hold(String bootstrap, String group, String topic) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", group);
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        AtomicBoolean released = new AtomicBoolean(false);
        Thread watcher = new Thread(() -> {
            try {
                while (System.in.read() >= 0) {
                    // wait for the end of input
                }
            } catch (IOException ignored) {
                // closed: release
            }
            released.set(true);
        });
        watcher.setDaemon(true);
        watcher.start();
        try (KafkaShareConsumer<byte[], byte[]> consumer = new KafkaShareConsumer<>(props);
             Admin admin = admin(bootstrap)) {
            consumer.subscribe(List.of(topic));
            boolean announced = false;
            Instant deadline = Instant.now().plusSeconds(60);
            while (!released.get()) {
                consumer.poll(Duration.ofMillis(200));
                if (!announced) {
                    if (hasMembers(admin, group)) {
                        System.out.println("{\"joined\": true}");
                        System.out.flush();
                        announced = true;
                    } else if (Instant.now().isAfter(deadline)) {
                        throw new IllegalStateException("the share consumer did not join " + group + " in 60 s");
                    }
                }
            }
        }
    }

    /** Whether `group` lists a member yet (not while the group or its coordinator is still being set up). */
    static boolean hasMembers(Admin admin, String group) throws InterruptedException {
        try {
            ShareGroupDescription described = admin.describeShareGroups(List.of(group)).describedGroups().get(group).get();
            return !described.members().isEmpty();
        } catch (ExecutionException notYet) {
            return false;
        }
    }

    static void alter(String bootstrap, String group, String topic, int partition, long offset) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            admin.alterShareGroupOffsets(group, Map.of(new TopicPartition(topic, partition), offset)).all().get();
        }
        System.out.println("{}");
    }

    static void offsets(String bootstrap, String group) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            Map<TopicPartition, SharePartitionOffsetInfo> offsets;
            try {
                offsets = admin
                    .listShareGroupOffsets(Map.of(group, new ListShareGroupOffsetsSpec()))
                    .partitionsToOffsetInfo(group)
                    .get();
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof GroupIdNotFoundException)) {
                    throw e;
                }
                offsets = Map.of(); // no such group: no offsets
            }
            List<String> rows = new ArrayList<>();
            offsets.forEach((partition, info) -> {
                if (info != null) {
                    rows.add(String.format("{\"topic\": \"%s\", \"partition\": %d, \"start_offset\": %d}",
                        partition.topic(), partition.partition(), info.startOffset()));
                }
            });
            System.out.println("{\"offsets\": [" + String.join(", ", rows) + "]}");
        }
    }
}
