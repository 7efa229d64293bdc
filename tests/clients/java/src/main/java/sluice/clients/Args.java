package sluice.clients;

import java.util.HashMap;
import java.util.Map;
import java.util.Properties;

/** {@code --key value} pairs after the scenario name, and the client settings they imply. */
final class Args {
  private final Map<String, String> values = new HashMap<>();

  static Args parse(String[] argv) {
    Args args = new Args();
    for (int i = 1; i < argv.length; i += 2) {
      if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
        Main.fail("expected --key value, got " + argv[i]);
      }
      args.values.put(argv[i].substring(2), argv[i + 1]);
    }
    return args;
  }

  String get(String key) {
    String value = values.get(key);
    if (value == null) {
      Main.fail("missing --" + key);
    }
    return value;
  }

  String or(String key, String fallback) {
    return values.getOrDefault(key, fallback);
  }

  int intOr(String key, int fallback) {
    return Integer.parseInt(or(key, Integer.toString(fallback)));
  }

  long longOr(String key, long fallback) {
    return Long.parseLong(or(key, Long.toString(fallback)));
  }

  /** Settings every client of a scenario shares: where the cluster is. */
  Properties common() {
    Properties props = new Properties();
    props.put("bootstrap.servers", get("brokers"));
    props.put("client.id", "javaclient");
    return props;
  }
}
