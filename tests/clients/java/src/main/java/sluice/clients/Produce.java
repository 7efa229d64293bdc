package sluice.clients;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * produce: for each codec of {@code --compression} (comma-separated), an idempotent producer
 * (acks=all) writes {@code --n} keyed records valued {@code java-CODEC-NNNNNN} to {@code --topic}.
 * Every acknowledgement is awaited; the offsets the broker gave each partition must rise.
 */
final class Produce {
  static Object run(Args args) throws Exception {
    String topic = args.get("topic");
    int n = args.intOr("n", 100);
    Map<String, Integer> produced = new LinkedHashMap<>();
    for (String codec : args.or("compression", "none").split(",")) {
      produced.put(codec, produceWith(args, topic, codec, n));
    }
    return Map.of("produced", produced);
  }

  private static int produceWith(Args args, String topic, String codec, int n) throws Exception {
    Properties props = args.common();
    props.put("enable.idempotence", "true");
    props.put("acks", "all");
    props.put("compression.type", codec);
    props.put("linger.ms", "5");
    props.put("key.serializer", StringSerializer.class.getName());
    props.put("value.serializer", StringSerializer.class.getName());
    List<Future<RecordMetadata>> acks = new ArrayList<>();
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
      for (int i = 0; i < n; i++) {
        String value = Main.value("java-" + codec, i);
        acks.add(producer.send(new ProducerRecord<>(topic, "k" + i, value)));
      }
      producer.flush();
      Map<Integer, Long> lastOffset = new LinkedHashMap<>();
      for (Future<RecordMetadata> ack : acks) {
        RecordMetadata meta = ack.get();
        Long previous = lastOffset.put(meta.partition(), meta.offset());
        if (previous != null && previous >= meta.offset()) {
          throw new IllegalStateException(
              "partition " + meta.partition() + " offsets went " + previous + " then " + meta.offset());
        }
      }
    }
    return n;
  }
}
