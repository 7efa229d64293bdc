package sluice.clients;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * share-consume: Kafka's own share consumer (KIP-932) in explicit acknowledgement mode reads
 * {@code --n} records of {@code --topic} as a member of share group {@code --group}. It
 * releases every tenth record at its first delivery and accepts everything else, so those come
 * back with a delivery count of 2. Then Kafka's admin client lists share groups, describes
 * this one and lists its start offsets. Prints the accepted values, how many were released and
 * redelivered, and what the admin saw.
 */
final class ShareConsume {
  static Object run(Args args) throws Exception {
    String topic = args.get("topic");
    String group = args.get("group");
    int n = args.intOr("n", 100);
    Main.Deadline deadline = new Main.Deadline(args);
    try (Admin admin = Admin.create(args.common())) {
      ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
      AlterConfigOp earliest =
          new AlterConfigOp(
              new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET);
      admin.incrementalAlterConfigs(Map.of(resource, List.of(earliest))).all().get();
    }
    Properties props = args.common();
    props.put("group.id", group);
    props.put("share.acknowledgement.mode", "explicit");
    props.put("key.deserializer", StringDeserializer.class.getName());
    props.put("value.deserializer", StringDeserializer.class.getName());
    List<String> accepted = new ArrayList<>();
    int released = 0;
    int redelivered = 0;
    try (KafkaShareConsumer<String, String> consumer = new KafkaShareConsumer<>(props)) {
      consumer.subscribe(Collections.singletonList(topic));
      while (accepted.size() < n) {
        deadline.check(n + " records (have " + accepted.size() + ")");
        for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
          short deliveries = record.deliveryCount().orElse((short) 0);
          if (record.offset() % 10 == 0 && deliveries == 1) {
            consumer.acknowledge(record, AcknowledgeType.RELEASE);
            released++;
            continue;
          }
          if (deliveries > 1) {
            redelivered++;
          }
          consumer.acknowledge(record, AcknowledgeType.ACCEPT);
          accepted.add(record.value());
        }
        consumer.commitSync(deadline.left()).forEach((partition, error) -> error.ifPresent(e -> {
          throw new IllegalStateException("acknowledging " + partition + " failed", e);
        }));
      }
    }
    Collections.sort(accepted);
    Map<String, Object> result = new TreeMap<>();
    result.put("values", accepted);
    result.put("released", released);
    result.put("redelivered", redelivered);
    result.putAll(adminView(args, group));
    return result;
  }

  /** What Kafka's admin client sees of the group once its member has left. */
  private static Map<String, Object> adminView(Args args, String group) throws Exception {
    Map<String, Object> out = new TreeMap<>();
    try (Admin admin = Admin.create(args.common())) {
      Set<String> listed = new HashSet<>();
      for (GroupListing g : admin.listGroups(ListGroupsOptions.forShareGroups()).all().get()) {
        listed.add(g.groupId());
      }
      out.put("listed", listed.contains(group));
      out.put(
          "group_state",
          admin.describeShareGroups(List.of(group)).describedGroups().get(group).get()
              .groupState().toString());
      Map<TopicPartition, SharePartitionOffsetInfo> offsets =
          admin.listShareGroupOffsets(Map.of(group, new ListShareGroupOffsetsSpec()))
              .partitionsToOffsetInfo(group).get();
      Map<String, Long> starts = new TreeMap<>();
      offsets.forEach((tp, info) -> starts.put(
          String.valueOf(tp.partition()), Optional.ofNullable(info).map(
              SharePartitionOffsetInfo::startOffset).orElse(-1L)));
      out.put("start_offsets", starts);
    }
    return out;
  }
}
