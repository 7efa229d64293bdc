//! Client quotas enforced (issue 15, docs/security.md): each user's and client id's produce
//! bytes, fetch bytes and handler time, measured against the quotas of the published metadata
//! image, as Kafka's `ClientQuotaManager` and `ClientRequestQuotaManager` do.
//!
//! Which quota applies is Kafka's precedence (`resolve`): the first of user and client id,
//! user and default client id, user, default user and client id, default user and default client
//! id, default user, client id, default client id that sets the key. Its sensor is shared by
//! every connection with the same names at that level's types (a user's quota by all of that
//! user's client ids), as Kafka's metric tags share it.
//!
//! Use is measured by a token bucket per sensor (`bucket`), each broker on its own (a quota is
//! per broker, as in Kafka). A use past the quota is not refused: the response says how long to
//! wait (`throttle_time_ms`), and the connection reads nothing more until then
//! (`QUOTA_THROTTLE_MS_MAX` at most per request; the rest of a debt is waited off after the
//! next requests).
//!
//! Not owned here: where quotas are kept (the metadata log, `sluice_controller`), and when
//! a handler records (produce: the request's bytes on arrival; fetch: what it read; every
//! request: its handler's time, in `dispatch`).

mod bucket;

use arc_swap::ArcSwap;
use bucket::Bucket;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use sluice_controller::{MetadataImage, QuotaEntity, QuotaValue};
use sluice_types::limits::{QUOTA_SENSORS_MAX, QUOTA_THROTTLE_MS_MAX};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a quota measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum QuotaKind {
    /// Bytes of Produce requests, per second (`producer_byte_rate`).
    Produce,
    /// Bytes of Fetch responses, per second (`consumer_byte_rate`).
    Fetch,
    /// Milliseconds of handler time, per second, as a percentage of one thread's
    /// (`request_percentage`: 100 is 1,000 ms a second).
    Request,
}

impl QuotaKind {
    pub(crate) fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
            QuotaKind::Request => "request_percentage",
        }
    }

    /// The quota's value as units per second.
    fn rate_per_second(self, value: f64) -> f64 {
        match self {
            QuotaKind::Request => value * 10.0,
            _ => value,
        }
    }
}

/// Whose use a sensor measures: the names at the types of the quota that applies (Kafka's
/// metric tags `user` and `client-id`, empty where the quota does not name that type).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SensorKey {
    kind: QuotaKind,
    user: String,
    client_id: String,
    /// Past `QUOTA_SENSORS_MAX` sensors, new ones share one per kind.
    overflow: bool,
}

type Table = BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>;

pub(crate) struct Quotas {
    table: ArcSwap<Table>,
    sensors: Mutex<HashMap<SensorKey, Bucket>>,
    epoch: Instant,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("entities", &self.table.load().len())
            .finish_non_exhaustive()
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            table: ArcSwap::default(),
            sensors: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

impl Quotas {
    /// Takes the quotas of a published image, when they changed.
    pub(crate) fn publish(&self, image: &MetadataImage) {
        if **self.table.load() != image.client_quotas {
            self.table.store(Arc::new(image.client_quotas.clone()));
        }
    }

    /// Whether any quota is set: without one, nothing is measured.
    pub(crate) fn any(&self) -> bool {
        !self.table.load().is_empty()
    }

    /// Records `amount` of `kind`'s use; the milliseconds the client is to wait (0: none).
    pub(crate) fn record(
        &self,
        kind: QuotaKind,
        principal: &str,
        client_id: &str,
        amount: f64,
    ) -> u64 {
        self.with_bucket(kind, principal, client_id, |bucket, rate, now| {
            bucket.take(amount, rate, now)
        })
        .map_or(0, |(_, wait_ms)| wait_ms)
    }

    /// The quota of `kind` that applies, if any: its rate per second and the wait already
    /// owed (recording nothing), found in one lookup.
    pub(crate) fn owed(
        &self,
        kind: QuotaKind,
        principal: &str,
        client_id: &str,
    ) -> Option<(f64, u64)> {
        self.with_bucket(kind, principal, client_id, |bucket, rate, now| {
            bucket.owed_ms(rate, now)
        })
    }

    fn with_bucket(
        &self,
        kind: QuotaKind,
        principal: &str,
        client_id: &str,
        act: impl FnOnce(&mut Bucket, f64, u64) -> u64,
    ) -> Option<(f64, u64)> {
        let table = self.table.load();
        // The in-process listener acts for the HTTP API's and views' many callers.
        if table.is_empty() || principal == crate::authentication::INTERNAL {
            return None;
        }
        let (mut key, rate) = resolve(&table, kind, user_of(principal), client_id)?;
        let now = self.epoch.elapsed().as_millis() as u64;
        let mut sensors = self.sensors.lock().expect("quota sensors lock");
        if !sensors.contains_key(&key) && sensors.len() >= QUOTA_SENSORS_MAX {
            // A full bucket tells nothing a new one would not.
            sensors.retain(|k, b| b.is_full(rate_of(&table, k).unwrap_or(rate), now));
            if sensors.len() >= QUOTA_SENSORS_MAX {
                key = SensorKey {
                    kind,
                    user: String::new(),
                    client_id: String::new(),
                    overflow: true,
                };
            }
        }
        let bucket = sensors.entry(key).or_insert_with(|| Bucket::new(rate, now));
        Some((rate, act(bucket, rate, now).min(QUOTA_THROTTLE_MS_MAX)))
    }
}

/// Holds the connection's reader for `wait_ms` (a request's handler calls it on the reader),
/// counts the throttle, and gives the response's `throttle_time_ms`.
pub(crate) fn hold_connection(kind: QuotaKind, wait_ms: u64) -> i32 {
    if wait_ms == 0 {
        return 0;
    }
    crate::dispatch::hold_reader(tokio::time::sleep(std::time::Duration::from_millis(
        wait_ms,
    )));
    tracing::trace!(quota = kind.key(), wait_ms, "throttled");
    i32::try_from(wait_ms).unwrap_or(i32::MAX)
}

/// `request_percentage`: a request's handler time, measured as the time spent polling its
/// future (waits for data, for replicas or for timers are not the broker's work) and recorded
/// when it is done. A caller past its quota has its connection held before the next request is
/// read; the response does not say so (its `throttle_time_ms` carries byte quotas only).
pub(crate) struct RequestTime {
    principal: Arc<str>,
    client_id: String,
}

/// APIs not measured: version discovery and what brokers send each other.
const REQUEST_QUOTA_EXEMPT: [ApiKey; 6] = [
    ApiKey::ApiVersions,
    ApiKey::WriteTxnMarkers,
    ApiKey::ReadShareGroupState,
    ApiKey::WriteShareGroupState,
    ApiKey::DeleteShareGroupState,
    ApiKey::InitializeShareGroupState,
];

impl RequestTime {
    /// Starts measuring a request, if a `request_percentage` applies to its caller; holds the
    /// connection for what the caller already owes.
    pub(crate) fn start(
        broker: &crate::server::Broker,
        api: ApiKey,
        caller: &crate::authorization::Caller,
        header: &RequestHeader,
    ) -> Option<RequestTime> {
        let quotas = &broker.quotas;
        if !quotas.any() || REQUEST_QUOTA_EXEMPT.contains(&api) {
            return None;
        }
        let client_id = header.client_id.as_deref().unwrap_or_default();
        let kind = QuotaKind::Request;
        let (_, owed_ms) = quotas.owed(kind, &caller.principal, client_id)?;
        hold_connection(kind, owed_ms);
        Some(RequestTime {
            principal: caller.principal.clone(),
            client_id: client_id.to_string(),
        })
    }

    /// `pending`, recording its polling time (and `spent` before it) when it is done.
    pub(crate) fn around(
        self,
        pending: crate::dispatch::Pending,
        spent: std::time::Duration,
        broker: Arc<crate::server::Broker>,
    ) -> crate::dispatch::Pending {
        Box::pin(Timed {
            inner: pending,
            spent,
            done: Some((self, broker)),
        })
    }
}

struct Timed {
    inner: crate::dispatch::Pending,
    spent: std::time::Duration,
    done: Option<(RequestTime, Arc<crate::server::Broker>)>,
}

impl std::future::Future for Timed {
    type Output = crate::dispatch::Reply;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let polled = Instant::now();
        let outcome = self.inner.as_mut().poll(cx);
        self.spent += polled.elapsed();
        if outcome.is_ready()
            && let Some((measured, broker)) = self.done.take()
        {
            let ms = self.spent.as_secs_f64() * 1000.0;
            broker.quotas.record(
                QuotaKind::Request,
                &measured.principal,
                &measured.client_id,
                ms,
            );
        }
        outcome
    }
}

/// The user of a principal (`User:alice` is `alice`), as Kafka's quota entities name it.
fn user_of(principal: &str) -> &str {
    principal.strip_prefix("User:").unwrap_or(principal)
}

/// The rate a sensor measures against now, if its quota is still set.
fn rate_of(table: &Table, key: &SensorKey) -> Option<f64> {
    resolve(table, key.kind, &key.user, &key.client_id).map(|(_, rate)| rate)
}

/// Kafka's precedence: the first entity, most specific first, that sets `kind`'s key; its
/// sensor and rate per second.
fn resolve(
    table: &Table,
    kind: QuotaKind,
    user: &str,
    client_id: &str,
) -> Option<(SensorKey, f64)> {
    if table.is_empty() {
        return None;
    }
    let named = |name: &str| Some(Some(name.to_string()));
    let at = |user, client_id| QuotaEntity { user, client_id };
    let levels: [QuotaEntity; 8] = [
        at(named(user), named(client_id)),
        at(named(user), Some(None)),
        at(named(user), None),
        at(Some(None), named(client_id)),
        at(Some(None), Some(None)),
        at(Some(None), None),
        at(None, named(client_id)),
        at(None, Some(None)),
    ];
    levels.into_iter().find_map(|entity| {
        let value = table.get(&entity)?.get(kind.key())?;
        let sensor = SensorKey {
            kind,
            user: entity.user.map_or_else(String::new, |_| user.to_string()),
            client_id: entity
                .client_id
                .map_or_else(String::new, |_| client_id.to_string()),
            overflow: false,
        };
        Some((sensor, kind.rate_per_second(value.0)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user or client id slot: by name, the default, or absent.
    type Slot<'a> = Option<Option<&'a str>>;

    fn table(entries: &[(Slot, Slot, &str, f64)]) -> Table {
        let mut table = Table::new();
        for (user, client_id, key, value) in entries {
            let owned = |n: &Option<Option<&str>>| n.map(|n| n.map(str::to_string));
            let entity = QuotaEntity {
                user: owned(user),
                client_id: owned(client_id),
            };
            table
                .entry(entity)
                .or_default()
                .insert(key.to_string(), QuotaValue(*value));
        }
        table
    }

    fn applies(table: &Table, user: &str, client_id: &str) -> Option<(String, String, f64)> {
        resolve(table, QuotaKind::Produce, user, client_id).map(|(k, r)| (k.user, k.client_id, r))
    }

    #[test]
    fn the_most_specific_entity_that_sets_the_key_applies() {
        let t = table(&[
            (
                Some(Some("alice")),
                Some(Some("app")),
                "producer_byte_rate",
                1.0,
            ),
            (Some(Some("alice")), None, "producer_byte_rate", 2.0),
            (Some(None), None, "producer_byte_rate", 3.0),
            (None, Some(Some("app")), "producer_byte_rate", 4.0),
            (None, Some(None), "producer_byte_rate", 5.0),
            (Some(Some("bob")), None, "consumer_byte_rate", 6.0),
        ]);
        let s = |x: &str| x.to_string();
        assert_eq!(
            applies(&t, "alice", "app"),
            Some((s("alice"), s("app"), 1.0))
        );
        assert_eq!(
            applies(&t, "alice", "other"),
            Some((s("alice"), s(""), 2.0))
        );
        // A default user's quota is each user's own.
        assert_eq!(applies(&t, "carol", "app"), Some((s("carol"), s(""), 3.0)));
        // bob sets only a consumer rate: the default user's producer rate applies.
        assert_eq!(applies(&t, "bob", "x"), Some((s("bob"), s(""), 3.0)));
        let no_users = table(&[
            (None, Some(Some("app")), "producer_byte_rate", 4.0),
            (None, Some(None), "producer_byte_rate", 5.0),
        ]);
        assert_eq!(
            applies(&no_users, "carol", "app"),
            Some((s(""), s("app"), 4.0))
        );
        assert_eq!(applies(&no_users, "carol", "x"), Some((s(""), s("x"), 5.0)));
        assert_eq!(applies(&Table::new(), "carol", "x"), None);
    }

    #[test]
    fn a_users_quota_is_shared_by_its_client_ids_and_request_percentage_is_time() {
        let quotas = Quotas::default();
        let mut image = MetadataImage::default();
        image.client_quotas = table(&[
            (Some(Some("alice")), None, "producer_byte_rate", 1000.0),
            (Some(Some("alice")), None, "request_percentage", 10.0),
        ]);
        quotas.publish(&image);
        assert_eq!(
            quotas.record(QuotaKind::Produce, "User:alice", "a", 1000.0),
            0
        );
        let owed = quotas.record(QuotaKind::Produce, "User:alice", "b", 500.0);
        assert!(
            (490..=500).contains(&owed),
            "{owed}: the burst is spent by another client id"
        );
        assert_eq!(quotas.record(QuotaKind::Produce, "User:bob", "a", 1e6), 0);
        assert_eq!(
            quotas
                .owed(QuotaKind::Request, "User:alice", "a")
                .map(|(rate, _)| rate),
            Some(100.0)
        );
        assert_eq!(
            quotas.record(QuotaKind::Produce, "User:alice", "a", 1e9),
            QUOTA_THROTTLE_MS_MAX,
            "a wait is bounded per request"
        );
    }
}
