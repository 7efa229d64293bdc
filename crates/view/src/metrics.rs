//! The views' Prometheus metrics, read from each engine's live state at scrape time:
//!
//! ```text
//! sluice_view_records_total{view, outcome="folded|filtered|skipped"}   counter
//! sluice_view_commits_total{view}                                      counter
//! sluice_view_commit_seconds_total{view}                               counter (÷ commits: the mean commit latency)
//! sluice_view_failures_total{view}                                     counter (attempts that failed and started again)
//! sluice_view_rows{view}                                               gauge (groups; a table's keys)
//! sluice_view_lag_records{view}                                        gauge (source records not folded yet)
//! sluice_view_replaying{view}                                          gauge (1 while folding again what is published)
//! sluice_view_stopped{view}                                            gauge (1 once a limit stopped it: `failed: ...`)
//! sluice_view_queries_total{view}                                      counter (queries of its rows: by key, pages, SELECT)
//! sluice_view_query_seconds_total{view}                                counter (÷ queries: the mean query latency)
//! sluice_view_rebuild_lag_records{view}                                gauge (records a rebuild or CREATE OR REPLACE still folds; 0: none under way)
//! sluice_view_rebuilding{view}                                         gauge (1 while one is)
//! sluice_view_state_bytes{view}                                        gauge (its groups and rows in the checkpoint)
//! ```
//!
//! The HTTP API's `sluice_http_request_duration_seconds` has the views' routes' latency
//! percentiles. One series per view: the number of views is bounded (`VIEWS_MAX`).
//!
//! Owns: the names and how they are read. Not: the registry of the broker (the binary joins the
//! texts).

use crate::engine::Phase;
use crate::service::Views;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewLabel {
    view: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecordLabels {
    view: String,
    outcome: &'static str,
}

/// OpenMetrics text of every view's metrics, ending in `# EOF`.
pub fn render(views: &Views) -> String {
    let records = Family::<RecordLabels, Counter>::default();
    let commits = Family::<ViewLabel, Counter>::default();
    let commit_seconds = Family::<ViewLabel, Counter<f64, AtomicU64>>::default();
    let failures = Family::<ViewLabel, Counter>::default();
    let rows = Family::<ViewLabel, Gauge>::default();
    let lag = Family::<ViewLabel, Gauge>::default();
    let replaying = Family::<ViewLabel, Gauge>::default();
    let stopped = Family::<ViewLabel, Gauge>::default();
    let queries = Family::<ViewLabel, Counter>::default();
    let query_seconds = Family::<ViewLabel, Counter<f64, AtomicU64>>::default();
    let rebuild_lag = Family::<ViewLabel, Gauge>::default();
    let rebuilding = Family::<ViewLabel, Gauge>::default();
    let state_bytes = Family::<ViewLabel, Gauge>::default();
    for running in views.all() {
        let view = ViewLabel {
            view: running.definition.name.clone(),
        };
        queries
            .get_or_create(&view)
            .inc_by(running.queries.load(Ordering::Relaxed));
        query_seconds
            .get_or_create(&view)
            .inc_by(running.query_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let lag = running.rebuild_lag();
        rebuild_lag.get_or_create(&view).set(lag.unwrap_or(0));
        rebuilding
            .get_or_create(&view)
            .set(i64::from(lag.is_some()));
        // A checkpoint that cannot be read now shows no series rather than a wrong one.
        if let Ok(bytes) = views.state_bytes(&view.view) {
            state_bytes
                .get_or_create(&view)
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }
    for running in views.all() {
        let name = running.definition.name.clone();
        let view = ViewLabel { view: name.clone() };
        let live = running.live.lock();
        let c = &live.counters;
        for (outcome, n) in [
            ("folded", c.records_folded),
            ("filtered", c.records_filtered),
            ("skipped", c.records_skipped),
        ] {
            let labels = RecordLabels {
                view: name.clone(),
                outcome,
            };
            records.get_or_create(&labels).inc_by(n);
        }
        commits.get_or_create(&view).inc_by(c.commits);
        commit_seconds
            .get_or_create(&view)
            .inc_by(c.commit_seconds_total);
        failures.get_or_create(&view).inc_by(c.failures);
        rows.get_or_create(&view)
            .set(i64::try_from(live.state.len()).unwrap_or(i64::MAX));
        lag.get_or_create(&view).set(live.lag());
        replaying
            .get_or_create(&view)
            .set(i64::from(live.phase == Phase::Replaying));
        stopped
            .get_or_create(&view)
            .set(i64::from(matches!(live.phase, Phase::Failed(_))));
    }
    let mut registry = Registry::default();
    registry.register(
        "sluice_view_records",
        "Source records by what became of them",
        records,
    );
    registry.register(
        "sluice_view_commits",
        "Commits of changed rows and offsets",
        commits,
    );
    registry.register(
        "sluice_view_commit_seconds",
        "Time spent in commits (divided by commits: the mean commit latency)",
        commit_seconds,
    );
    registry.register(
        "sluice_view_failures",
        "Attempts that failed, after which the engine started again from its checkpoint",
        failures,
    );
    registry.register(
        "sluice_view_rows",
        "Groups a view holds (a table: keys)",
        rows,
    );
    registry.register(
        "sluice_view_lag_records",
        "Source records not folded yet, as the latest fetches saw the source's ends",
        lag,
    );
    registry.register(
        "sluice_view_replaying",
        "1 while a view folds again what it already published (after a crash or a lost checkpoint)",
        replaying,
    );
    registry.register(
        "sluice_view_stopped",
        "1 once a view stopped for good (a limit reached): drop or replace it",
        stopped,
    );
    registry.register(
        "sluice_view_queries",
        "Queries of a view's rows (by key, pages, SELECT)",
        queries,
    );
    registry.register(
        "sluice_view_query_seconds",
        "Time spent answering queries (divided by queries: the mean query latency)",
        query_seconds,
    );
    registry.register(
        "sluice_view_rebuild_lag_records",
        "Source records a rebuild or CREATE OR REPLACE under way still has to fold (0: none)",
        rebuild_lag,
    );
    registry.register(
        "sluice_view_rebuilding",
        "1 while a rebuild or CREATE OR REPLACE folds a new state beside the view",
        rebuilding,
    );
    registry.register(
        "sluice_view_state_bytes",
        "Bytes of a view's groups and rows in its checkpoint (keys and values)",
        state_bytes,
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}
