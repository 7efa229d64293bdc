//! `LogView`: storage's `Log` as replication's `ReplicaLog`, what the state machines may know of
//! a replica's log (taken under the partition's lock, for the one call that needs it).

use sluice_replication::ReplicaLog;
use sluice_storage::Log;

pub(crate) struct LogView<'a>(pub &'a Log);

impl ReplicaLog for LogView<'_> {
    fn log_start_offset(&self) -> i64 {
        self.0.log_start_offset()
    }
    fn log_end_offset(&self) -> i64 {
        self.0.log_end_offset()
    }
    fn durable_end_offset(&self) -> i64 {
        self.0.recovery_point().min(self.0.log_end_offset())
    }
    fn latest_epoch(&self) -> Option<i32> {
        self.0.epoch_entries().last().map(|e| e.epoch)
    }
    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let (found, end) = self.0.end_offset_for_epoch(epoch);
        (found >= 0).then_some((found, end))
    }
}
