//! The leader-epoch cache of one partition (Kafka's `LeaderEpochFileCache`): for every leader
//! epoch the log has had, the offset of its first batch. A follower asks a leader where its
//! epoch ended (OffsetForLeaderEpoch) and cuts its log there; a restarted replica learns from it
//! the newest epoch its batches may carry.
//!
//! Owns the entries and their rules, and the text they are kept in; not the file itself (the
//! log writes it with `checkpoint::write_atomically`) nor when it changes (`log/epochs.rs`).
//!
//! Invariant: epochs and start offsets both strictly increase along the entries.
//!
//! File format, `leader-epoch-checkpoint` in the partition directory, as Kafka writes it
//! (ASCII, one item per line, replaced atomically):
//! ```text
//! 0               version
//! N               number of entries
//! EPOCH OFFSET    N lines: a leader epoch and the offset of its first batch
//! ```

/// The name of the checkpoint file in a partition's directory.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// The epoch of "no epoch" (Kafka's `UNDEFINED_EPOCH`), and its offset.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

const FORMAT_VERSION: u32 = 0;

/// Entries the file may hold; more is a damaged file, not a log (an epoch per leader change).
const ENTRIES_MAX: usize = 1 << 20;

/// One leader epoch and the offset of the first batch written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`; true if the entries changed. Entries
    /// that would break the order (an epoch as new, or an offset as far) are dropped first, as
    /// Kafka does: the newer assignment is the truth.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        assert!(
            epoch >= 0 && start_offset >= 0,
            "epoch {epoch} at offset {start_offset}: both must be >= 0"
        );
        let needed = self
            .latest()
            .is_none_or(|l| l.epoch != epoch || start_offset < l.start_offset);
        if !needed {
            return false;
        }
        let kept = |e: &EpochEntry| e.epoch < epoch && e.start_offset < start_offset;
        let dropped: Vec<EpochEntry> = self.entries.iter().filter(|e| !kept(e)).copied().collect();
        self.entries.retain(kept);
        // An older epoch that began at this same offset (it holds no batch: a leader took over
        // an empty tail) is replaced without a word; anything more is worth a warning, as
        // Kafka's cache judges it.
        let trivial = matches!(dropped.as_slice(),
            [only] if only.epoch < epoch && only.start_offset == start_offset);
        if !dropped.is_empty() && !trivial {
            tracing::warn!(
                epoch,
                start_offset,
                dropped = dropped.len(),
                "leader epoch assignment replaced entries that conflicted with it"
            );
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// What a batch found in the log says: an epoch newer than the latest starts at the
    /// batch's base offset (rebuilding the cache from batch headers, and recovery).
    pub fn observe_batch(&mut self, epoch: i32, base_offset: i64) -> bool {
        epoch >= 0
            && self.latest_epoch().is_none_or(|l| epoch > l)
            && self.assign(epoch, base_offset)
    }

    /// OffsetForLeaderEpoch: the newest epoch at or below `requested` and the offset where it
    /// ended (the start of the next epoch, or `log_end_offset` for the latest), Kafka's answer
    /// case by case. Undefined when `requested` is undefined or newer than every epoch.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return undefined;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return undefined;
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            // Older than every epoch known: it ended where the first known one began.
            None => (requested, higher.start_offset),
        }
    }

    /// The epoch of the batch at `offset`: the newest epoch starting at or before it
    /// (undefined before the first).
    pub fn epoch_for_offset(&self, offset: i64) -> i32 {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map_or(UNDEFINED_EPOCH, |e| e.epoch)
    }

    /// Forgets epochs that start at or after `end_offset` (the log was cut there); true if
    /// the entries changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        self.entries.len() < before
    }

    /// The log now starts at `start_offset`: epochs that began at or before it collapse into
    /// the newest of them, starting there; true if the entries changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covered = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        let Some(newest_covered) = covered.checked_sub(1).map(|i| self.entries[i]) else {
            return false;
        };
        if covered == 1 && newest_covered.start_offset == start_offset {
            return false;
        }
        self.entries.drain(..covered);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: newest_covered.epoch,
                start_offset,
            },
        );
        true
    }

    /// The file's text (see the module doc).
    pub fn encode(&self) -> String {
        let mut text = format!("{FORMAT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        text
    }

    /// Parses the file's text; `None` if it is not a well-formed cache (the log then rebuilds
    /// the cache from its batches).
    pub fn decode(text: &str) -> Option<LeaderEpochCache> {
        let mut lines = text.lines();
        if lines.next()?.trim().parse::<u32>().ok()? != FORMAT_VERSION {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        if count > ENTRIES_MAX {
            return None;
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let mut fields = lines.next()?.split_whitespace();
            let entry = EpochEntry {
                epoch: fields.next()?.parse().ok()?,
                start_offset: fields.next()?.parse().ok()?,
            };
            let ordered = entries.last().is_none_or(|p: &EpochEntry| {
                entry.epoch > p.epoch && entry.start_offset > p.start_offset
            });
            if fields.next().is_some() || entry.epoch < 0 || entry.start_offset < 0 || !ordered {
                return None;
            }
            entries.push(entry);
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return None;
        }
        Some(LeaderEpochCache { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(epoch, offset) in entries {
            assert!(c.assign(epoch, offset));
        }
        c
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn end_offset_for_answers_as_kafka_does() {
        let c = cache(&[(1, 10), (3, 20), (6, 30)]);
        assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, 40), (-1, -1));
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(6, 40), (6, 40));
        // A known epoch ends where the next begins.
        assert_eq!(c.end_offset_for(1, 40), (1, 20));
        assert_eq!(c.end_offset_for(3, 40), (3, 30));
        // An unknown epoch between known ones: the one below it, ending where the next begins.
        assert_eq!(c.end_offset_for(2, 40), (1, 20));
        assert_eq!(c.end_offset_for(5, 40), (3, 30));
        // Older than every epoch: it ended where the first began.
        assert_eq!(c.end_offset_for(0, 40), (0, 10));
        // Newer than every epoch: undefined.
        assert_eq!(c.end_offset_for(7, 40), (-1, -1));
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 5), (-1, -1));
        assert_eq!(c.epoch_for_offset(9), -1);
        assert_eq!(c.epoch_for_offset(10), 1);
        assert_eq!(c.epoch_for_offset(29), 3);
        assert_eq!(c.epoch_for_offset(1000), 6);
    }

    #[test]
    fn assign_keeps_the_order_by_dropping_what_conflicts() {
        let mut c = cache(&[(1, 10), (3, 20)]);
        assert!(
            !c.assign(3, 25),
            "same epoch at a later offset changes nothing"
        );
        assert!(
            c.assign(3, 15),
            "same epoch at an earlier offset moves its start"
        );
        assert_eq!(pairs(&c), [(1, 10), (3, 15)]);
        assert!(c.assign(2, 12), "an older epoch drops the newer ones");
        assert_eq!(pairs(&c), [(1, 10), (2, 12)]);
        assert!(
            c.assign(4, 5),
            "an earlier offset drops the entries at or after it"
        );
        assert_eq!(pairs(&c), [(4, 5)]);
    }

    #[test]
    fn observe_batch_adds_only_newer_epochs() {
        let mut c = LeaderEpochCache::default();
        for (epoch, offset) in [(0, 0), (0, 5), (2, 9), (1, 12), (2, 14), (5, 20), (-1, 25)] {
            c.observe_batch(epoch, offset);
        }
        assert_eq!(pairs(&c), [(0, 0), (2, 9), (5, 20)]);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 10), (3, 20), (6, 30)]);
        assert!(!c.truncate_from_end(31));
        assert!(c.truncate_from_end(30));
        assert_eq!(pairs(&c), [(1, 10), (3, 20)]);
        assert!(!c.truncate_from_start(5));
        assert!(!c.truncate_from_start(10));
        assert!(c.truncate_from_start(25));
        assert_eq!(pairs(&c), [(3, 25)]);
        assert!(!c.truncate_from_start(25));
        let mut c = cache(&[(1, 10), (3, 20)]);
        assert!(c.truncate_from_start(20));
        assert_eq!(pairs(&c), [(3, 20)]);
    }

    #[test]
    fn the_file_text_round_trips_and_damage_is_refused() {
        let c = cache(&[(0, 0), (4, 100), (9, 12345)]);
        assert_eq!(c.encode(), "0\n3\n0 0\n4 100\n9 12345\n");
        assert_eq!(LeaderEpochCache::decode(&c.encode()), Some(c));
        assert_eq!(
            LeaderEpochCache::decode("0\n0\n"),
            Some(LeaderEpochCache::default())
        );
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n2\n3 10\n2 20\n",
            "0\n2\n2 10\n3 10\n",
            "0\n1\n-1 0\n",
            "0\n1\n1 0 7\n",
            "0\n1\n1 0\n2 5\n",
            "0\n99999999999\n",
            "0\n1\nx 0\n",
        ] {
            assert_eq!(LeaderEpochCache::decode(bad), None, "{bad:?}");
        }
    }
}
