package sluice.clients;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * consume-assign: reads {@code --n} records of {@code --topic} from the beginning of every
 * partition, by assignment (no group). consume-subscribe: joins {@code --group} under
 * {@code --protocol} (classic or consumer, KIP-848), reads {@code --n} records and commits them.
 * Both print the values in the order each partition gave them, partition by partition.
 */
final class Consume {
  static Object byAssign(Args args) {
    Properties props = consumerProps(args);
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
      String topic = args.get("topic");
      List<TopicPartition> partitions =
          consumer.partitionsFor(topic).stream()
              .map(p -> new TopicPartition(topic, p.partition()))
              .collect(Collectors.toList());
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      return Map.of("values", readN(consumer, args));
    }
  }

  static Object bySubscribe(Args args) {
    Properties props = consumerProps(args);
    props.put("group.id", args.get("group"));
    props.put("group.protocol", args.or("protocol", "classic"));
    props.put("auto.offset.reset", "earliest");
    props.put("enable.auto.commit", "false");
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
      consumer.subscribe(Collections.singletonList(args.get("topic")));
      List<String> values = readN(consumer, args);
      consumer.commitSync();
      return Map.of("values", values, "committed", true);
    }
  }

  private static Properties consumerProps(Args args) {
    Properties props = args.common();
    props.put("key.deserializer", StringDeserializer.class.getName());
    props.put("value.deserializer", StringDeserializer.class.getName());
    props.put("isolation.level", args.or("isolation", "read_uncommitted"));
    return props;
  }

  /** Polls until {@code --n} records arrived; more than that is an error, not a bonus. */
  private static List<String> readN(KafkaConsumer<String, String> consumer, Args args) {
    int n = args.intOr("n", 100);
    Main.Deadline deadline = new Main.Deadline(args);
    List<String> values = new ArrayList<>();
    while (values.size() < n) {
      deadline.check(n + " records (have " + values.size() + ")");
      for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
        values.add(record.value());
      }
    }
    if (values.size() > n) {
      throw new IllegalStateException("read " + values.size() + " records, expected " + n);
    }
    return values;
  }
}
