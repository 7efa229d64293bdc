package sluice.clients;

import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * admin: what an operator does with Kafka's Admin client, in order, reporting what the broker
 * answered at each step: create {@code --topic} (3 partitions, retention.ms set), describe it,
 * alter a config incrementally and describe configs, list offsets of partition 0 after 10
 * records, delete the records before offset 4, then list and describe the group {@code --group}
 * after it consumed and committed the rest.
 */
final class AdminScenario {
  static Object run(Args args) throws Exception {
    String topic = args.get("topic");
    String group = args.get("group");
    TopicPartition p0 = new TopicPartition(topic, 0);
    Map<String, Object> found = new LinkedHashMap<>();
    try (Admin admin = Admin.create(args.common())) {
      NewTopic newTopic = new NewTopic(topic, 3, (short) 1)
          .configs(Map.of("retention.ms", "86400000"));
      admin.createTopics(List.of(newTopic)).all().get();

      TopicDescription description =
          admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
      found.put("partitions", description.partitions().size());

      ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      AlterConfigOp set = new AlterConfigOp(
          new ConfigEntry("retention.ms", "123456"), AlterConfigOp.OpType.SET);
      admin.incrementalAlterConfigs(Map.of(resource, List.of(set))).all().get();
      Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
      ConfigEntry retention = config.get("retention.ms");
      found.put("retention_ms", retention.value());
      found.put("retention_source", retention.source().name());

      produceTen(args, p0);
      found.put("earliest", offset(admin, p0, OffsetSpec.earliest()));
      found.put("latest", offset(admin, p0, OffsetSpec.latest()));
      found.put("max_timestamp_offset", offset(admin, p0, OffsetSpec.maxTimestamp()));

      long low = admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(4)))
          .lowWatermarks().get(p0).get().lowWatermark();
      found.put("low_watermark", low);
      found.put("earliest_after_delete", offset(admin, p0, OffsetSpec.earliest()));

      found.put("consumed", consumeAndCommit(args, topic, group));
      List<String> groups = admin.listGroups().all().get().stream()
          .map(GroupListing::groupId).sorted().collect(Collectors.toList());
      found.put("groups", groups);
      ConsumerGroupDescription described =
          admin.describeConsumerGroups(List.of(group)).all().get().get(group);
      found.put("group_state", described.groupState().name());
      Map<TopicPartition, OffsetAndMetadata> committed =
          admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
      found.put("group_committed_p0", committed.get(p0).offset());
    }
    return found;
  }

  private static long offset(Admin admin, TopicPartition partition, OffsetSpec spec)
      throws Exception {
    return admin.listOffsets(Map.of(partition, spec)).partitionResult(partition).get().offset();
  }

  private static void produceTen(Args args, TopicPartition partition) throws Exception {
    Properties props = args.common();
    props.put("key.serializer", StringSerializer.class.getName());
    props.put("value.serializer", StringSerializer.class.getName());
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
      for (int i = 0; i < 10; i++) {
        producer.send(new ProducerRecord<>(partition.topic(), partition.partition(), null,
            Main.value("admin", i))).get();
      }
    }
  }

  /** A classic group member reads what is left of partition 0 and commits it. */
  private static int consumeAndCommit(Args args, String topic, String group) {
    Properties props = args.common();
    props.put("group.id", group);
    props.put("auto.offset.reset", "earliest");
    props.put("enable.auto.commit", "false");
    props.put("key.deserializer", StringDeserializer.class.getName());
    props.put("value.deserializer", StringDeserializer.class.getName());
    Main.Deadline deadline = new Main.Deadline(args);
    int consumed = 0;
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
      consumer.subscribe(Collections.singletonList(topic));
      while (consumed < 6) {
        deadline.check("the 6 records left after DeleteRecords");
        consumed += consumer.poll(Duration.ofMillis(200)).count();
      }
      consumer.commitSync();
    }
    return consumed;
  }
}
