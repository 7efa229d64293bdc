//! The scrubber: verifies every closed segment's batches against their CRCs in the
//! background, a segment at a time, at no more than `log_scrub_bytes_per_second`, then rests
//! `log_scrub_interval_ms` before the next pass. Damage it finds is recorded as a read's would
//! be (logged, `sluice_partition_damaged_offsets`, refused to fetches), so it is known before a
//! consumer meets it. The verification itself is storage's (`Partition::scrub_segment`).

use crate::server::Broker;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(crate) async fn scrub_loop(broker: Arc<Broker>, shutdown: CancellationToken) {
    let rate = broker.config.scrub_bytes_per_second;
    if rate == 0 {
        return;
    }
    let rest = Duration::from_millis(broker.config.scrub_interval_ms);
    loop {
        let (mut segments, mut bytes, mut damaged) = (0u64, 0u64, 0i64);
        for topic in broker.logs.topics() {
            for partition in topic.partitions() {
                for base in partition.closed_segment_bases() {
                    let p = partition.clone();
                    let scrubbed = tokio::task::spawn_blocking(move || p.scrub_segment(base)).await;
                    let report = match scrubbed {
                        Ok(Ok(report)) => report,
                        Ok(Err(e)) => {
                            tracing::warn!(topic = topic.name(), partition = partition.index(), segment = base, error = %e, "scrub of a segment failed");
                            continue;
                        }
                        Err(_) => return, // the runtime is shutting down
                    };
                    segments += report.segments;
                    bytes += report.bytes;
                    damaged += report.damaged_offsets;
                    broker.metrics.scrubbed(report.bytes);
                    let pace = Duration::from_secs_f64(report.bytes as f64 / rate as f64);
                    tokio::select! {
                        _ = tokio::time::sleep(pace) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
        tracing::info!(
            segments,
            bytes,
            damaged_offsets = damaged,
            "scrub pass done"
        );
        tokio::select! {
            _ = tokio::time::sleep(rest) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
