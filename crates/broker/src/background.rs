//! Background work: one flusher per partition (group commit for `acks=all`, and the
//! `flush.ms` / `flush.messages` bounds otherwise), and periodic housekeeping (retention and
//! recovery-point checkpoints). fsyncs and file deletions run on the blocking pool, never on
//! the async threads.

use crate::metrics::Metrics;
use crate::server::Broker;
use sluice_storage::Partition;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest a flusher sleeps before rechecking `flush.ms` (configs can change at run time).
const FLUSH_CHECK_MS_MAX: i64 = 1000;

/// Least time between the end of one fsync of a partition and the start of the next. Under a
/// stream of tiny `acks=all` requests (`linger.ms=0`), back-to-back fsyncs cost about 60 µs of
/// kernel CPU each and starved everything else on a 2-core machine (run-queue delays of 11 ms
/// for broker and client threads, seen with `perf sched`); spacing them lets each fsync cover
/// more requests. Paired runs at 10,000 records/s: end-to-end p99 7.8/10.2/8.6 ms without,
/// 7.2/5.1/5.8 ms with, throughput unchanged. It only works together with a deep enough
/// per-connection in-flight limit, or the reader stalls behind the waiting acknowledgements.
const FSYNC_SPACING: Duration = Duration::from_micros(500);

/// Flushes one partition whenever a producer waits for durability, and whenever `flush.ms`
/// or `flush.messages` says so. While one fsync runs, new requests accumulate and share the
/// next one: that is the group commit.
pub(crate) async fn flush_loop(
    partition: Arc<Partition>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut last_fsync = std::time::Instant::now() - FSYNC_SPACING;
    loop {
        let check_ms = partition
            .log()
            .config()
            .flush_ms
            .clamp(1, FLUSH_CHECK_MS_MAX) as u64;
        let requested = tokio::select! {
            _ = partition.flush_requested() => true,
            _ = tokio::time::sleep(Duration::from_millis(check_ms)) => false,
            _ = shutdown.cancelled() => return,
        };
        if partition.log().is_offline() {
            return;
        }
        if !requested && !partition.flush_due(crate::now_ms()) {
            continue;
        }
        let p = partition.clone();
        let since = last_fsync.elapsed();
        let result = tokio::task::spawn_blocking(move || {
            if since < FSYNC_SPACING {
                std::thread::sleep(FSYNC_SPACING - since);
            }
            let started = std::time::Instant::now();
            let flushed = p.flush(crate::now_ms());
            (flushed, started.elapsed())
        })
        .await
        .map(|(flushed, took)| {
            metrics.fsync_done(took);
            flushed
        });
        last_fsync = std::time::Instant::now();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(topic = partition.topic(), partition = partition.index(), error = %e, "fsync failed; partition offline");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "flush task panicked");
                return;
            }
        }
    }
}

/// Compacts every partition whose `cleanup.policy` includes `compact`, every
/// `log.cleaner.backoff.ms`, one partition at a time on the blocking pool.
pub(crate) async fn cleaner_loop(broker: Arc<Broker>, shutdown: CancellationToken) {
    let backoff = Duration::from_millis(broker.config.cleaner_backoff_ms.max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || compact_all(&b)).await;
    }
}

fn compact_all(broker: &Broker) {
    for topic in broker.logs.topics() {
        for partition in topic.partitions() {
            if !partition.log().config().cleanup_compact {
                continue;
            }
            match partition.clean(crate::now_ms()) {
                Ok(None) => {}
                Ok(Some(stats)) => tracing::info!(
                    topic = topic.name(),
                    partition = partition.index(),
                    segments = stats.segments,
                    bytes_before = stats.bytes_before,
                    bytes_after = stats.bytes_after,
                    records_removed = stats.records_removed,
                    "compacted"
                ),
                Err(e) => {
                    tracing::warn!(topic = topic.name(), partition = partition.index(), error = %e, "compaction failed; will retry")
                }
            }
        }
    }
}

/// Applies retention and checkpoints recovery points, each on its own interval.
pub(crate) async fn housekeeping_loop(broker: Arc<Broker>, shutdown: CancellationToken) {
    let retention_every = broker.config.retention_check_interval_ms.max(10);
    let checkpoint_every = broker.config.recovery_checkpoint_interval_ms.max(10);
    let tick = retention_every.min(checkpoint_every);
    let (mut since_retention, mut since_checkpoint) = (0, 0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(tick)) => {}
            _ = shutdown.cancelled() => return,
        }
        since_retention += tick;
        since_checkpoint += tick;
        let run_retention = since_retention >= retention_every;
        let run_checkpoint = since_checkpoint >= checkpoint_every;
        if run_retention {
            since_retention = 0;
        }
        if run_checkpoint {
            since_checkpoint = 0;
        }
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if run_retention {
                apply_retention(&b);
            }
            if run_checkpoint {
                b.logs.checkpoint_recovery_points();
            }
        })
        .await;
    }
}

fn apply_retention(broker: &Broker) {
    let now = crate::now_ms();
    for topic in broker.logs.topics() {
        for partition in topic.partitions() {
            match partition.log().apply_retention(now) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    topic = topic.name(),
                    partition = partition.index(),
                    segments = n,
                    "retention deleted segments"
                ),
                Err(e) => {
                    tracing::warn!(topic = topic.name(), partition = partition.index(), error = %e, "retention failed")
                }
            }
        }
    }
}
