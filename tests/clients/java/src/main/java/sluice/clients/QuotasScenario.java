package sluice.clients;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;

/**
 * quotas: client quotas through Kafka's Admin client (AlterClientQuotas, DescribeClientQuotas),
 * reporting what the broker answered: set quotas on a user, a client id, a user and client id
 * pair, and the default client id; describe them all, then strictly by one entity, then by a
 * default; remove one key; and the errors of an unknown key, a fractional byte rate, and an
 * entity of no known type.
 */
final class QuotasScenario {
  static Object run(Args args) throws Exception {
    Map<String, Object> found = new LinkedHashMap<>();
    try (Admin admin = Admin.create(args.common())) {
      ClientQuotaEntity alice = entity("user", "alice");
      ClientQuotaEntity app = entity("client-id", "app");
      ClientQuotaEntity aliceApp = new ClientQuotaEntity(map("user", "alice", "client-id", "app"));
      ClientQuotaEntity defaultClient = entity("client-id", null);
      admin.alterClientQuotas(List.of(
          alteration(alice, "producer_byte_rate", 1048576.0),
          alteration(app, "consumer_byte_rate", 2097152.0),
          new ClientQuotaAlteration(aliceApp, List.of(
              new ClientQuotaAlteration.Op("producer_byte_rate", 4096.0),
              new ClientQuotaAlteration.Op("request_percentage", 50.0))),
          alteration(defaultClient, "producer_byte_rate", 65536.0)))
          .all().get();
      found.put("all", describe(admin, ClientQuotaFilter.all()));
      found.put("strict_alice", describe(admin, ClientQuotaFilter.containsOnly(
          List.of(ClientQuotaFilterComponent.ofEntity("user", "alice")))));
      found.put("any_with_alice", describe(admin, ClientQuotaFilter.contains(
          List.of(ClientQuotaFilterComponent.ofEntity("user", "alice")))));
      found.put("default_client", describe(admin, ClientQuotaFilter.contains(
          List.of(ClientQuotaFilterComponent.ofDefaultEntity("client-id")))));

      admin.alterClientQuotas(List.of(new ClientQuotaAlteration(aliceApp, List.of(
          new ClientQuotaAlteration.Op("request_percentage", null))))).all().get();
      found.put("after_remove", describe(admin, ClientQuotaFilter.containsOnly(List.of(
          ClientQuotaFilterComponent.ofEntity("user", "alice"),
          ClientQuotaFilterComponent.ofEntity("client-id", "app")))));

      found.put("unknown_key", error(admin, alteration(app, "no_such_quota", 1.0)));
      found.put("fractional_rate", error(admin, alteration(app, "producer_byte_rate", 1.5)));
      found.put("unknown_entity", error(admin, alteration(entity("group", "g"),
          "producer_byte_rate", 1.0)));
    }
    return found;
  }

  private static ClientQuotaEntity entity(String type, String name) {
    return new ClientQuotaEntity(map(type, name));
  }

  private static Map<String, String> map(String... pairs) {
    Map<String, String> entries = new LinkedHashMap<>();
    for (int i = 0; i < pairs.length; i += 2) {
      entries.put(pairs[i], pairs[i + 1]);
    }
    return entries;
  }

  private static ClientQuotaAlteration alteration(ClientQuotaEntity e, String key, Double value) {
    return new ClientQuotaAlteration(e, List.of(new ClientQuotaAlteration.Op(key, value)));
  }

  /** Each entity as "type=name,..." (a default as "type=<default>") with its quotas. */
  private static Map<String, Map<String, Double>> describe(Admin admin, ClientQuotaFilter filter)
      throws Exception {
    Map<String, Map<String, Double>> out = new TreeMap<>();
    admin.describeClientQuotas(filter).entities().get().forEach((entity, quotas) -> {
      List<String> parts = new ArrayList<>();
      new TreeMap<>(entity.entries()).forEach((type, name) ->
          parts.add(type + "=" + (name == null ? "<default>" : name)));
      out.put(String.join(",", parts), new TreeMap<>(quotas));
    });
    return out;
  }

  private static String error(Admin admin, ClientQuotaAlteration alteration) {
    try {
      admin.alterClientQuotas(List.of(alteration)).all().get();
      return "none";
    } catch (ExecutionException e) {
      return e.getCause().getClass().getSimpleName();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "interrupted";
    }
  }
}
