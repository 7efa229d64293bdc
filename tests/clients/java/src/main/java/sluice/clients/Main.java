package sluice.clients;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;

/**
 * Drives Sluice with Apache Kafka's own Java client and Kafka Streams. The black-box suite
 * (tests/blackbox/test_java_clients.py) runs one scenario per JVM and checks the one JSON line
 * it prints, and what an independent client (librdkafka) reads back.
 *
 * <p>Usage: {@code java -cp ... sluice.clients.Main SCENARIO --brokers HOST:PORT [--key value]...}
 *
 * <p>Scenarios: produce, consume-assign, consume-subscribe, txn-copy, admin, wordcount,
 * share-consume, quotas. Each exits
 * non-zero with the cause on stderr when it fails or its deadline ({@code --timeout-ms}) passes.
 */
public final class Main {
  interface Scenario {
    Object run(Args args) throws Exception;
  }

  public static void main(String[] argv) throws Exception {
    if (argv.length < 1) {
      fail("usage: Main SCENARIO --brokers HOST:PORT [--key value]...");
    }
    Map<String, Scenario> scenarios = new HashMap<>();
    scenarios.put("produce", Produce::run);
    scenarios.put("consume-assign", Consume::byAssign);
    scenarios.put("consume-subscribe", Consume::bySubscribe);
    scenarios.put("txn-copy", TxnCopy::run);
    scenarios.put("admin", AdminScenario::run);
    scenarios.put("wordcount", WordCount::run);
    scenarios.put("share-consume", ShareConsume::run);
    scenarios.put("quotas", QuotasScenario::run);
    Scenario scenario = scenarios.get(argv[0]);
    if (scenario == null) {
      fail("unknown scenario " + argv[0]);
    }
    Object result = scenario.run(Args.parse(argv));
    System.out.println(new ObjectMapper().writeValueAsString(result));
    // Kafka Streams and client threads may linger; the answer is printed, so leave now.
    System.exit(0);
  }

  static void fail(String why) {
    System.err.println("javaclient: " + why);
    System.exit(1);
  }

  /** The i-th record's value in every scenario, so readers can check what arrived. */
  static String value(String prefix, int i) {
    return String.format("%s-%06d", prefix, i);
  }

  /** A deadline for the whole scenario, from {@code --timeout-ms}. */
  static final class Deadline {
    private final Instant end;

    Deadline(Args args) {
      end = Instant.now().plusMillis(args.longOr("timeout-ms", 60_000));
    }

    boolean passed() {
      return Instant.now().isAfter(end);
    }

    void check(String waitingFor) {
      if (passed()) {
        throw new IllegalStateException("deadline passed waiting for " + waitingFor);
      }
    }

    Duration left() {
      Duration left = Duration.between(Instant.now(), end);
      return left.isNegative() ? Duration.ZERO : left;
    }
  }
}
