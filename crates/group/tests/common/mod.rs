//! Helpers shared by the group coordinator's tests: commands as the broker runs them, with
//! their records written (so offset records take effect, `Effects::on_write`).
// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use sluice_group::{Effects, GroupCoordinator, GroupError, MemberRef, OffsetToCommit};

pub type Results = Result<Vec<Result<(), GroupError>>, GroupError>;

pub trait Written {
    /// OffsetCommit whose records the log took.
    fn commit_written(
        &mut self,
        group: &str,
        who: &MemberRef,
        offsets: Vec<OffsetToCommit>,
        now_ms: i64,
    ) -> (Effects, Results);

    /// TxnOffsetCommit whose records the log took.
    fn txn_commit_written(
        &mut self,
        group: &str,
        who: &MemberRef,
        producer: (i64, i16),
        offsets: Vec<OffsetToCommit>,
        now_ms: i64,
    ) -> (Effects, Results);
}

impl Written for GroupCoordinator {
    fn commit_written(
        &mut self,
        group: &str,
        who: &MemberRef,
        offsets: Vec<OffsetToCommit>,
        now_ms: i64,
    ) -> (Effects, Results) {
        let (fx, results) = self.commit_offsets(group, who, offsets, now_ms);
        write(self, &fx);
        (fx, results)
    }

    fn txn_commit_written(
        &mut self,
        group: &str,
        who: &MemberRef,
        producer: (i64, i16),
        offsets: Vec<OffsetToCommit>,
        now_ms: i64,
    ) -> (Effects, Results) {
        let (fx, results) = self.txn_commit_offsets(group, who, producer, offsets, now_ms);
        write(self, &fx);
        (fx, results)
    }
}

/// Hands `fx`'s records back as written, and the records that follows up on, until none do.
pub fn write(c: &mut GroupCoordinator, fx: &Effects) {
    if let Some(on_write) = fx.on_write {
        let follow_up = c.written(&fx.records, on_write);
        write(c, &follow_up);
    }
}
