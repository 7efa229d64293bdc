//! A follower of one partition: it fetches from its leader, appends what comes back with the
//! leader's offsets and epochs, and truncates where its log diverged from the leader's.
//!
//! The rule stronger than Kafka's: a follower fetches again only once what it appended is
//! fsynced (`Effect::AppendAndFlush`, then `on_flushed`), so the fetch offset it reports is
//! durable, and the leader's high watermark means "on disk on every in-sync replica".
//!
//! Phases: idle (a fetch is due at a time) → fetching (one request in flight, matched by its
//! id; an answer to any other is stale and ignored; one unanswered for `fetch_timeout_ms` is
//! sent again) → appending and flushing → idle. Truncation (Kafka's `truncateOnFetchResponse`
//! with the diverging epoch) happens between two fetches: the next fetch carries the new last
//! epoch, and the leader checks again, until the logs agree.
//!
//! Not owned here: who leads (the registration the caller applies: a new leader or epoch is a
//! new `Follower`).

use crate::{Effect, FetchRequest, ReplicaLog, ReplicationError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerConfig {
    /// Wait after an error before fetching again (`replica.fetch.backoff.ms`).
    pub fetch_backoff_ms: i64,
    /// Wait after an answer without records: none where the leader holds a fetch until
    /// records come or its wait ends (a long poll, as Kafka's leaders do).
    pub empty_fetch_backoff_ms: i64,
    /// A fetch unanswered this long is given up and sent again.
    pub fetch_timeout_ms: i64,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        FollowerConfig {
            fetch_backoff_ms: 1_000,
            empty_fetch_backoff_ms: 0,
            fetch_timeout_ms: 30_000,
        }
    }
}

/// The leader's answer to a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    pub request_id: u64,
    pub result: Result<FetchData, ReplicationError>,
}

/// A successful answer: the leader's offsets, and either a divergence or records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchData {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The leader's epoch and its end offset where the follower's log diverged.
    pub diverging_epoch: Option<(i32, i64)>,
    /// The base offset of the first batch returned and one past the last offset of the last;
    /// None when there are none.
    pub records: Option<(i64, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle { fetch_at_ms: i64 },
    Fetching { request_id: u64, sent_ms: i64 },
    Flushing,
}

#[derive(Debug)]
pub struct Follower {
    node_id: i32,
    leader_id: i32,
    leader_epoch: i32,
    phase: Phase,
    next_request_id: u64,
    /// The leader's high watermark and log start offset from its last answer (followed after
    /// each flush).
    leader_high_watermark: i64,
    leader_log_start_offset: i64,
    config: FollowerConfig,
}

impl Follower {
    /// Follows `leader_id` in `leader_epoch`; the first fetch is due at once. Request ids
    /// start at `first_request_id` (the caller keeps them unique across followers).
    pub fn new(
        node_id: i32,
        leader_id: i32,
        leader_epoch: i32,
        first_request_id: u64,
        now_ms: i64,
        config: FollowerConfig,
    ) -> Follower {
        Follower {
            node_id,
            leader_id,
            leader_epoch,
            phase: Phase::Idle {
                fetch_at_ms: now_ms,
            },
            next_request_id: first_request_id,
            leader_high_watermark: -1,
            leader_log_start_offset: -1,
            config,
        }
    }

    pub fn leader_id(&self) -> i32 {
        self.leader_id
    }
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
    /// The id the next fetch will carry.
    pub fn next_request_id(&self) -> u64 {
        self.next_request_id
    }

    /// Time passes: a due fetch is sent, an unanswered one sent again. A log with an unsynced
    /// tail (appended before this follower began: as leader, or by a follower it replaced) is
    /// fsynced first, since the fetch offset reports what is durable.
    pub fn tick(&mut self, log: &impl ReplicaLog, now_ms: i64) -> Vec<Effect> {
        let due = match self.phase {
            Phase::Idle { fetch_at_ms } => now_ms >= fetch_at_ms,
            Phase::Fetching { sent_ms, .. } => now_ms - sent_ms >= self.config.fetch_timeout_ms,
            Phase::Flushing => false,
        };
        if !due {
            return Vec::new();
        }
        if log.durable_end_offset() < log.log_end_offset() {
            self.phase = Phase::Flushing;
            return vec![Effect::Flush];
        }
        vec![Effect::SendFetch(self.fetch(log, now_ms))]
    }

    fn fetch(&mut self, log: &impl ReplicaLog, now_ms: i64) -> FetchRequest {
        debug_assert_eq!(log.durable_end_offset(), log.log_end_offset());
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.phase = Phase::Fetching {
            request_id,
            sent_ms: now_ms,
        };
        FetchRequest {
            request_id,
            replica_id: self.node_id,
            current_leader_epoch: self.leader_epoch,
            fetch_offset: log.log_end_offset(),
            last_fetched_epoch: log.latest_epoch(),
        }
    }

    /// The leader's answer. Effects come in the order to carry them out; after an
    /// `AppendAndFlush` the caller reports the fsync with `on_flushed`.
    pub fn on_fetch_response(
        &mut self,
        response: &FetchResponse,
        log: &impl ReplicaLog,
        now_ms: i64,
    ) -> Vec<Effect> {
        let awaited = matches!(self.phase, Phase::Fetching { request_id, .. } if request_id == response.request_id);
        if !awaited {
            return Vec::new();
        }
        let data = match &response.result {
            Ok(data) => data,
            Err(ReplicationError::OffsetOutOfRange {
                log_start_offset,
                log_end_offset,
                ..
            }) => return self.out_of_range(*log_start_offset, *log_end_offset, log, now_ms),
            Err(_) => {
                self.idle(now_ms + self.config.fetch_backoff_ms);
                return Vec::new();
            }
        };
        self.leader_high_watermark = self.leader_high_watermark.max(data.high_watermark);
        self.leader_log_start_offset = self.leader_log_start_offset.max(data.log_start_offset);
        if let Some((epoch, end_offset)) = data.diverging_epoch {
            self.idle(now_ms);
            return vec![truncation(log, epoch, end_offset)];
        }
        match data.records {
            Some((first_offset, _)) => {
                self.phase = Phase::Flushing;
                let end = log.log_end_offset();
                if first_offset < end && log.log_start_offset() < end {
                    // The first batch straddles this log's end: the leader's log starts inside
                    // it (DeleteRecords), and what this log holds below its end lies below the
                    // leader's start, where the two cannot be compared. It goes, and the batch
                    // starts the log (Kafka's follower handles the same case with
                    // `truncateFullyAndStartAt` when its own log is empty).
                    return vec![Effect::TruncateFullyAndStartAt(end), Effect::AppendAndFlush];
                }
                vec![Effect::AppendAndFlush]
            }
            None => {
                self.idle(now_ms + self.config.empty_fetch_backoff_ms);
                self.follow_leader_offsets(log)
            }
        }
    }

    /// What `AppendAndFlush` or `Flush` asked for is fsynced: the high watermark and log start
    /// follow the leader's, and the next fetch (reporting the new durable end) goes out.
    pub fn on_flushed(&mut self, log: &impl ReplicaLog, now_ms: i64) -> Vec<Effect> {
        if self.phase != Phase::Flushing || log.durable_end_offset() < log.log_end_offset() {
            return Vec::new();
        }
        let mut effects = self.follow_leader_offsets(log);
        effects.push(Effect::SendFetch(self.fetch(log, now_ms)));
        effects
    }

    /// A follower's high watermark is the leader's, at most its own log end; its log start
    /// moves up with the leader's, at most to that high watermark.
    fn follow_leader_offsets(&self, log: &impl ReplicaLog) -> Vec<Effect> {
        let mut effects = Vec::new();
        let high_watermark = self.leader_high_watermark.min(log.log_end_offset());
        if high_watermark >= 0 {
            effects.push(Effect::AdvanceHighWatermark(high_watermark));
        }
        let start = self.leader_log_start_offset.min(high_watermark);
        if start > log.log_start_offset() {
            effects.push(Effect::AdvanceLogStartOffset(start));
        }
        effects
    }

    /// The fetch offset is outside the leader's log: past its start (the leader's retention
    /// moved on) the follower starts over there; past its end (a follower without epochs to
    /// compare) it cuts back to the leader's end.
    fn out_of_range(
        &mut self,
        leader_start: i64,
        leader_end: i64,
        log: &impl ReplicaLog,
        now_ms: i64,
    ) -> Vec<Effect> {
        self.idle(now_ms);
        let end = log.log_end_offset();
        if end < leader_start {
            vec![Effect::TruncateFullyAndStartAt(leader_start)]
        } else if end > leader_end {
            vec![Effect::TruncateTo(leader_end)]
        } else {
            // The leader's log moved between the check and the answer; fetch again.
            Vec::new()
        }
    }

    fn idle(&mut self, fetch_at_ms: i64) {
        self.phase = Phase::Idle { fetch_at_ms };
    }
}

/// Where to cut a log that diverged from the leader's (Kafka's `getOffsetTruncationState`):
/// the leader's log holds `epoch` up to `end_offset`. If this log knows that epoch too, the
/// logs agree up to the smaller of the two ends; if not, this log is cut to where its newest
/// epoch below that one ends, and the next fetch compares again. An epoch below 0 says the
/// leader knows no epoch as old as this log's newest: its log starts at `end_offset`, past
/// everything this one could share with it, so this one starts over there.
fn truncation(log: &impl ReplicaLog, epoch: i32, end_offset: i64) -> Effect {
    let log_end = log.log_end_offset();
    if epoch < 0 {
        return Effect::TruncateFullyAndStartAt(end_offset);
    }
    let cut = match log.end_offset_for_epoch(epoch) {
        Some((own_epoch, own_end)) if own_epoch == epoch => own_end.min(end_offset),
        Some((_, own_end)) => own_end,
        None => end_offset,
    };
    Effect::TruncateTo(cut.min(log_end))
}
