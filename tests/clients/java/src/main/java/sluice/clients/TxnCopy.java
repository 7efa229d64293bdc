package sluice.clients;

import java.time.Duration;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * txn-copy: the consume-transform-produce loop of an exactly-once service. Reads {@code --input}
 * with read_committed as member of {@code --group}, writes each value prefixed {@code copied-} to
 * {@code --output} and commits the input offsets in the same transaction ({@code --txn}), until
 * the group's committed offsets cover {@code --n} input records. The broker may be killed and
 * restarted meanwhile: a failed transaction is aborted (or the producer replaced, when the
 * error is fatal) and the consumer rewound to the committed offsets, as Kafka's docs prescribe.
 * {@code --pace-ms} rests between transactions so a test can kill the broker mid-way.
 */
final class TxnCopy {
  static Object run(Args args) throws Exception {
    int n = args.intOr("n", 1000);
    long paceMs = args.longOr("pace-ms", 0);
    Main.Deadline deadline = new Main.Deadline(args);
    int aborted = 0;
    int producersReplaced = 0;
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps(args))) {
      consumer.subscribe(Collections.singletonList(args.get("input")));
      KafkaProducer<String, String> producer = newProducer(args);
      long copied = 0;
      try {
        while (copied < n) {
          deadline.check("the group's offsets to cover " + n + " records (at " + copied + ")");
          ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
          if (records.isEmpty()) {
            continue;
          }
          try {
            copyInOneTransaction(producer, consumer, records, args.get("output"));
            copied += records.count();
          } catch (ProducerFencedException
              | InvalidProducerEpochException
              | OutOfOrderSequenceException
              | AuthorizationException fatal) {
            System.err.println("javaclient: replacing the producer after " + fatal);
            producer.close(Duration.ZERO);
            producer = newProducer(args);
            producersReplaced++;
            copied = rewindToCommitted(consumer);
          } catch (KafkaException abortable) {
            System.err.println("javaclient: aborting after " + abortable);
            aborted++;
            try {
              producer.abortTransaction();
            } catch (KafkaException cannotAbort) {
              producer.close(Duration.ZERO);
              producer = newProducer(args);
              producersReplaced++;
            }
            copied = rewindToCommitted(consumer);
          }
          if (paceMs > 0) {
            Thread.sleep(paceMs);
          }
        }
      } finally {
        producer.close(Duration.ofSeconds(5));
      }
      return Map.of("copied", committedTotal(consumer), "aborted", aborted,
          "producers_replaced", producersReplaced);
    }
  }

  private static void copyInOneTransaction(KafkaProducer<String, String> producer,
      KafkaConsumer<String, String> consumer, ConsumerRecords<String, String> records,
      String output) {
    producer.beginTransaction();
    Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
    for (ConsumerRecord<String, String> record : records) {
      producer.send(new ProducerRecord<>(output, record.key(), "copied-" + record.value()));
      next.put(new TopicPartition(record.topic(), record.partition()),
          new OffsetAndMetadata(record.offset() + 1));
    }
    producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
    producer.commitTransaction();
  }

  /** Seeks every assigned partition back to its committed offset; returns their total. */
  private static long rewindToCommitted(KafkaConsumer<String, String> consumer) {
    Set<TopicPartition> assigned = consumer.assignment();
    Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(assigned);
    for (TopicPartition partition : assigned) {
      OffsetAndMetadata offset = committed.get(partition);
      if (offset == null) {
        consumer.seekToBeginning(Collections.singletonList(partition));
      } else {
        consumer.seek(partition, offset.offset());
      }
    }
    return committedTotal(consumer);
  }

  /** The input records the group has consumed, by its committed offsets (input starts at 0). */
  private static long committedTotal(KafkaConsumer<String, String> consumer) {
    Set<TopicPartition> partitions = new java.util.HashSet<>();
    for (String topic : consumer.subscription()) {
      consumer.partitionsFor(topic).forEach(p -> partitions.add(new TopicPartition(topic, p.partition())));
    }
    return consumer.committed(partitions).values().stream()
        .filter(o -> o != null)
        .mapToLong(OffsetAndMetadata::offset)
        .sum();
  }

  private static Properties consumerProps(Args args) {
    Properties props = args.common();
    props.put("group.id", args.get("group"));
    props.put("isolation.level", "read_committed");
    props.put("enable.auto.commit", "false");
    props.put("auto.offset.reset", "earliest");
    props.put("max.poll.records", args.or("batch", "50"));
    props.put("key.deserializer", StringDeserializer.class.getName());
    props.put("value.deserializer", StringDeserializer.class.getName());
    return props;
  }

  private static KafkaProducer<String, String> newProducer(Args args) {
    Properties props = args.common();
    props.put("transactional.id", args.get("txn"));
    props.put("key.serializer", StringSerializer.class.getName());
    props.put("value.serializer", StringSerializer.class.getName());
    KafkaProducer<String, String> producer = new KafkaProducer<>(props);
    producer.initTransactions();
    return producer;
  }
}
