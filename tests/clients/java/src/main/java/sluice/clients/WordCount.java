package sluice.clients;

import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * wordcount: Kafka Streams' word-count example, exactly_once_v2. Counts the words of the lines
 * in {@code --input} into {@code --output} (word → count, a long), with the repartition and
 * changelog topics Streams creates for itself on the broker. Runs until a read_committed reader
 * of the output sees, for every word, the count the input implies, then prints those counts.
 */
final class WordCount {
  static Object run(Args args) throws Exception {
    String input = args.get("input");
    String output = args.get("output");
    Main.Deadline deadline = new Main.Deadline(args);
    Map<String, Long> expected = countWords(readAll(args, input, deadline));
    KafkaStreams streams = new KafkaStreams(new StreamsBuilder() {{
        stream(input, Consumed.with(Serdes.String(), Serdes.String()))
            .flatMapValues(line -> Arrays.asList(line.toLowerCase().split("\\W+")))
            .filter((key, word) -> !word.isEmpty())
            .groupBy((key, word) -> word)
            .count(Materialized.as("counts"))
            .toStream()
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));
      }}.build(), streamsProps(args));
    streams.setUncaughtExceptionHandler(e -> {
      System.err.println("javaclient: stream thread died: " + e);
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
          .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    streams.start();
    try {
      Map<String, Long> seen = awaitCounts(args, output, expected, deadline);
      return Map.of("counts", new TreeMap<>(seen), "state", streams.state().name());
    } finally {
      streams.close(Duration.ofSeconds(10));
    }
  }

  private static Properties streamsProps(Args args) {
    Properties props = args.common();
    props.remove("client.id");
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args.get("app-id"));
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
    props.put(StreamsConfig.STATE_DIR_CONFIG, args.get("state-dir"));
    props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    return props;
  }

  static Map<String, Long> countWords(List<String> lines) {
    return lines.stream()
        .flatMap(line -> Arrays.stream(line.toLowerCase().split("\\W+")))
        .filter(word -> !word.isEmpty())
        .collect(Collectors.groupingBy(word -> word, Collectors.counting()));
  }

  /** Every value of {@code topic}, read by assignment up to the end offsets of now. */
  private static List<String> readAll(Args args, String topic, Main.Deadline deadline) {
    Properties props = args.common();
    props.put("key.deserializer", StringDeserializer.class.getName());
    props.put("value.deserializer", StringDeserializer.class.getName());
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
          .map(p -> new TopicPartition(topic, p.partition())).collect(Collectors.toList());
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
      List<String> lines = new java.util.ArrayList<>();
      while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))) {
        deadline.check("the input's " + end + " records");
        consumer.poll(Duration.ofMillis(200)).forEach(r -> lines.add(r.value()));
      }
      return lines;
    }
  }

  /** Reads the output read_committed until the latest count of every word is the expected. */
  private static Map<String, Long> awaitCounts(Args args, String topic,
      Map<String, Long> expected, Main.Deadline deadline) {
    Properties props = args.common();
    props.put("isolation.level", "read_committed");
    props.put("key.deserializer", StringDeserializer.class.getName());
    props.put("value.deserializer", LongDeserializer.class.getName());
    Map<String, Long> latest = new HashMap<>();
    try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> partitions = waitForPartitions(consumer, topic, deadline);
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      while (!latest.equals(expected)) {
        deadline.check("counts " + expected + " (latest " + latest + ")");
        for (ConsumerRecord<String, Long> record : consumer.poll(Duration.ofMillis(200))) {
          latest.put(record.key(), record.value());
        }
      }
    }
    return latest;
  }

  private static List<TopicPartition> waitForPartitions(KafkaConsumer<String, Long> consumer,
      String topic, Main.Deadline deadline) {
    while (true) {
      deadline.check("topic " + topic);
      List<org.apache.kafka.common.PartitionInfo> infos =
          consumer.listTopics(Duration.ofSeconds(5)).get(topic);
      if (infos != null && !infos.isEmpty()) {
        return infos.stream().map(p -> new TopicPartition(topic, p.partition()))
            .collect(Collectors.toList());
      }
    }
  }
}
