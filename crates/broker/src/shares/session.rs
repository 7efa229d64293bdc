//! Share sessions (KIP-932): which partitions a member of a share group fetches from this
//! broker, and the epoch its next ShareFetch or ShareAcknowledge must carry.
//!
//! A session is keyed by (group, member). Epoch 0 opens one (replacing any old one), a positive
//! epoch continues it (it must be the one expected; each use moves it on), -1 closes it. A
//! continuing ShareFetch adds the partitions it names and drops those it forgets; an empty list
//! changes nothing.
//!
//! Owns: the sessions and their bounds. Not: the records a member holds (`Shares` releases
//! them when a session is closed).

use sluice_types::limits::{
    SHARE_SESSION_IDLE_EVICT_MS, SHARE_SESSION_PARTITIONS_MAX, SHARE_SESSIONS_MAX,
};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A partition of a session: topic id and index.
pub(crate) type SessionPartition = (Uuid, i32);

/// Epochs a request may carry.
pub(crate) const OPEN_EPOCH: i32 = 0;
pub(crate) const CLOSE_EPOCH: i32 = -1;

/// Why a session step was refused (each is a Kafka error at the top of the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionError {
    NotFound,
    InvalidEpoch,
    LimitReached,
    InvalidRequest(&'static str),
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    /// In the order they were added.
    partitions: Vec<SessionPartition>,
    last_used_ms: i64,
}

/// What a session step leaves the caller to do.
#[derive(Debug, Default)]
pub(crate) struct Step {
    /// The session's partitions after the step.
    pub partitions: Vec<SessionPartition>,
    /// Partitions whose records the member holds are to be released: every partition of a
    /// session that was closed. A forgotten partition, or a session replaced by a new one,
    /// releases nothing, as in Kafka: the client may still hand those records to its
    /// application and acknowledge them, so they stay its own until acknowledged or their
    /// locks expire (releasing them at once delivered them twice).
    pub released: Vec<SessionPartition>,
}

#[derive(Debug, Default)]
pub(crate) struct Sessions {
    sessions: HashMap<(String, String), Session>,
}

impl Sessions {
    /// A ShareFetch's step: `added` joins the session, `forgotten` leaves it.
    pub fn fetch(
        &mut self,
        key: (String, String),
        epoch: i32,
        added: &[SessionPartition],
        forgotten: &[SessionPartition],
        now_ms: i64,
    ) -> Result<Step, SessionError> {
        if epoch == CLOSE_EPOCH && !forgotten.is_empty() {
            return Err(SessionError::InvalidRequest(
                "a closing ShareFetch forgets no partitions",
            ));
        }
        let mut step = Step::default();
        if epoch == OPEN_EPOCH {
            self.sessions.remove(&key);
            self.make_room(now_ms)?;
            let session = Session {
                next_epoch: OPEN_EPOCH,
                partitions: Vec::new(),
                last_used_ms: now_ms,
            };
            self.sessions.insert(key.clone(), session);
        }
        let session = self.current(&key, epoch)?;
        // Sets, not scans of the lists: a request naming many partitions costs linear time.
        let mut present: HashSet<SessionPartition> = session.partitions.iter().copied().collect();
        for p in added {
            if present.insert(*p) {
                if session.partitions.len() >= SHARE_SESSION_PARTITIONS_MAX {
                    return Err(SessionError::InvalidRequest(
                        "too many partitions in one session",
                    ));
                }
                session.partitions.push(*p);
            }
        }
        if !forgotten.is_empty() {
            let forgotten: HashSet<&SessionPartition> = forgotten.iter().collect();
            session.partitions.retain(|p| !forgotten.contains(p));
        }
        step.partitions = session.partitions.clone();
        self.used(key, epoch, now_ms, &mut step);
        Ok(step)
    }

    /// A ShareAcknowledge's step: it continues or closes a session, never opens one.
    pub fn acknowledge(
        &mut self,
        key: (String, String),
        epoch: i32,
        now_ms: i64,
    ) -> Result<Step, SessionError> {
        if epoch == OPEN_EPOCH {
            return Err(SessionError::InvalidEpoch);
        }
        let session = self.current(&key, epoch)?;
        let mut step = Step {
            partitions: session.partitions.clone(),
            released: Vec::new(),
        };
        self.used(key, epoch, now_ms, &mut step);
        Ok(step)
    }

    /// The session a request with `epoch` continues; a wrong epoch ends it.
    fn current(
        &mut self,
        key: &(String, String),
        epoch: i32,
    ) -> Result<&mut Session, SessionError> {
        let Some(session) = self.sessions.get(key) else {
            return Err(SessionError::NotFound);
        };
        if epoch != CLOSE_EPOCH && epoch != session.next_epoch {
            self.sessions.remove(key);
            return Err(SessionError::InvalidEpoch);
        }
        Ok(self.sessions.get_mut(key).expect("looked up above"))
    }

    /// After a step: a closing request ends the session (its partitions released), any other
    /// moves the epoch on.
    fn used(&mut self, key: (String, String), epoch: i32, now_ms: i64, step: &mut Step) {
        if epoch == CLOSE_EPOCH {
            if let Some(old) = self.sessions.remove(&key) {
                step.released.extend(old.partitions);
            }
            return;
        }
        let session = self.sessions.get_mut(&key).expect("the step's session");
        session.next_epoch = if session.next_epoch == i32::MAX {
            1
        } else {
            session.next_epoch + 1
        };
        session.last_used_ms = now_ms;
    }

    /// Room for one more session: the least recently used one goes if it has been idle long
    /// enough.
    fn make_room(&mut self, now_ms: i64) -> Result<(), SessionError> {
        if self.sessions.len() < SHARE_SESSIONS_MAX {
            return Ok(());
        }
        let idlest = self
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.last_used_ms)
            .filter(|(_, s)| s.last_used_ms + SHARE_SESSION_IDLE_EVICT_MS <= now_ms)
            .map(|(k, _)| k.clone());
        match idlest {
            Some(k) => {
                self.sessions.remove(&k);
                Ok(())
            }
            None => Err(SessionError::LimitReached),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (String, String) {
        ("g".into(), "m".into())
    }

    #[test]
    fn a_session_opens_continues_forgets_and_closes() {
        let t = Uuid::from_u128(7);
        let mut s = Sessions::default();
        let step = s.fetch(key(), 0, &[(t, 0), (t, 1)], &[], 0).unwrap();
        assert_eq!(step.partitions, vec![(t, 0), (t, 1)]);
        // The next epoch is 1; an empty list changes nothing.
        let step = s.fetch(key(), 1, &[], &[], 1).unwrap();
        assert_eq!(step.partitions.len(), 2);
        let step = s.fetch(key(), 2, &[], &[(t, 0)], 2).unwrap();
        assert_eq!((step.partitions, step.released), (vec![(t, 1)], vec![]));
        let step = s.acknowledge(key(), 3, 3).unwrap();
        assert_eq!(step.partitions, vec![(t, 1)]);
        let step = s.acknowledge(key(), CLOSE_EPOCH, 4).unwrap();
        assert_eq!(step.released, vec![(t, 1)]);
        assert_eq!(s.len(), 0);
        assert_eq!(
            s.fetch(key(), 5, &[], &[], 5).unwrap_err(),
            SessionError::NotFound
        );
    }

    #[test]
    fn a_wrong_epoch_ends_the_session_and_zero_replaces_it() {
        let t = Uuid::from_u128(7);
        let mut s = Sessions::default();
        s.fetch(key(), 0, &[(t, 0)], &[], 0).unwrap();
        assert_eq!(
            s.fetch(key(), 9, &[], &[], 1).unwrap_err(),
            SessionError::InvalidEpoch
        );
        assert_eq!(
            s.fetch(key(), 1, &[], &[], 1).unwrap_err(),
            SessionError::NotFound
        );
        s.fetch(key(), 0, &[(t, 0)], &[], 2).unwrap();
        let step = s.fetch(key(), 0, &[(t, 1)], &[], 3).unwrap();
        assert_eq!((step.partitions, step.released), (vec![(t, 1)], vec![]));
        assert_eq!(
            s.acknowledge(key(), 0, 4).unwrap_err(),
            SessionError::InvalidEpoch
        );
    }

    #[test]
    fn a_session_holds_at_most_its_limit_of_partitions() {
        let t = Uuid::from_u128(7);
        let mut s = Sessions::default();
        let max = SHARE_SESSION_PARTITIONS_MAX as i32;
        let all: Vec<_> = (0..max).map(|p| (t, p)).collect();
        let step = s.fetch(key(), 0, &all, &[], 0).unwrap();
        assert_eq!(step.partitions.len(), all.len());
        // Naming them again adds nothing; one more is refused.
        assert!(s.fetch(key(), 1, &all, &[], 1).is_ok());
        let refused = s.fetch(key(), 2, &[(t, max)], &[], 2).unwrap_err();
        assert!(matches!(refused, SessionError::InvalidRequest(_)));
    }
}
