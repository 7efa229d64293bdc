//! `LogStore`: the metadata log on disk, as openraft's `RaftLogStorage`. Entries are fsynced
//! before openraft is told they are stored (`append` calls `io_completed` only after
//! `fdatasync`): a known bug class of openraft's users is to report an entry stored while it
//! sits in the page cache, which a power failure turns into a voter that forgets what it
//! voted for.
//!
//! Files in the log's directory:
//! - `raft-log`: entries end to end, each a frame `u32 length (big-endian) | u32 CRC-32C of the
//!   payload | payload`, the payload openraft's entry in postcard. At open the frames are read
//!   back; the first that is torn or fails its CRC ends the log, and the file is cut there
//!   (an entry is only ever acknowledged after its fsync, so a bad frame is an unacknowledged
//!   tail).
//! - `raft-vote`, `raft-committed`, `raft-purged`: the vote, the committed log id and the last
//!   purged log id, each postcard, replaced atomically (written, fsynced, renamed, directory
//!   fsynced).
//!
//! A purge rewrites `raft-log` without the purged entries (purges follow snapshots, so they are
//! rare). The whole log is also kept in memory: the metadata log is small, and a snapshot lets
//! its prefix go.
//!
//! The writes are small and rare (metadata changes and votes), so they happen on the task that
//! calls; a busy cluster would want them on a writer thread of their own.

use crate::TypeConfig;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const LOG_FILE: &str = "raft-log";
const VOTE_FILE: &str = "raft-vote";
const COMMITTED_FILE: &str = "raft-committed";
const PURGED_FILE: &str = "raft-purged";
const FRAME_HEADER_BYTES: usize = 8;
/// The largest entry a frame may claim: a metadata record's bound, plus room for openraft's
/// own fields and a membership.
const ENTRY_BYTES_MAX: usize = sluice_types::limits::METADATA_RECORD_BYTES_MAX + 64 * 1024;

type Entry = EntryOf<TypeConfig>;
type LogId = LogIdOf<TypeConfig>;
type Vote = VoteOf<TypeConfig>;
/// Entries by index, each with the position of its frame in `raft-log`.
type Entries = BTreeMap<u64, (Entry, u64)>;

/// The log storage; cloning shares it (openraft's reader is a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: File,
    /// Every entry still in the log, with where its frame starts in `raft-log`.
    entries: Entries,
    file_end: u64,
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn or damaged tail.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let (entries, valid_end) = read_frames(&mut file)?;
        if valid_end < file.metadata()?.len() {
            tracing::warn!(file = %path.display(), valid_end, "cutting a torn tail off the metadata log");
            file.set_len(valid_end)?;
            file.sync_all()?;
        }
        let purged: Option<LogId> = read_value(&dir.join(PURGED_FILE))?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            file,
            entries,
            file_end: valid_end,
            vote: read_value(&dir.join(VOTE_FILE))?,
            committed: read_value::<Option<LogId>>(&dir.join(COMMITTED_FILE))?.flatten(),
            purged,
        };
        if let Some(purged) = inner.purged {
            // A crash between writing `raft-purged` and rewriting the log leaves purged
            // entries in the file: they go now.
            inner.entries.retain(|&i, _| i > purged.index());
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads frames from the start of `file`: the entries, each with its frame's position, and
/// where the last whole, intact frame ends.
fn read_frames(file: &mut File) -> io::Result<(Entries, u64)> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    let mut entries = BTreeMap::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + FRAME_HEADER_BYTES) {
        let len = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
        let start = at + FRAME_HEADER_BYTES;
        let Some(payload) = bytes
            .get(start..start + len)
            .filter(|_| len <= ENTRY_BYTES_MAX)
        else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(entry) = postcard::from_bytes::<Entry>(payload) else {
            break;
        };
        entries.insert(entry.index(), (entry, at as u64));
        at = start + len;
    }
    Ok((entries, at as u64))
}

fn frame(entry: &Entry) -> io::Result<Vec<u8>> {
    let payload = postcard::to_allocvec(entry).map_err(invalid)?;
    let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn read_value<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => postcard::from_bytes(&bytes).map(Some).map_err(invalid),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces `path` atomically and durably with `value`.
fn write_value<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = postcard::to_allocvec(value).map_err(invalid)?;
    write_atomically(path, &bytes)
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

impl Inner {
    fn append(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let mut bytes = Vec::new();
        let mut placed = Vec::with_capacity(entries.len());
        for entry in entries {
            let position = self.file_end + bytes.len() as u64;
            bytes.extend(frame(&entry)?);
            placed.push((entry, position));
        }
        if let Err(e) = self.file.write_all(&bytes) {
            // Nothing of a failed write may stay: the next append must land on a frame boundary.
            self.file.set_len(self.file_end)?;
            return Err(e);
        }
        self.file.sync_data()?;
        self.file_end += bytes.len() as u64;
        for (entry, position) in placed {
            self.entries.insert(entry.index(), (entry, position));
        }
        Ok(())
    }

    /// Removes every entry after `last` (all of them if None), durably.
    fn truncate_after(&mut self, last: Option<&LogId>) -> io::Result<()> {
        let first_gone = last.map_or(0, |l| l.index() + 1);
        let Some((_, position)) = self
            .entries
            .range(first_gone..)
            .next()
            .map(|(_, e)| e.clone())
        else {
            return Ok(());
        };
        self.file.set_len(position)?;
        self.file.sync_all()?;
        self.file_end = position;
        self.entries.retain(|&i, _| i < first_gone);
        Ok(())
    }

    /// Forgets every entry up to `log_id`: the purge point first (so a crash never brings
    /// them back as live), then a rewrite of the log without them.
    fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        write_value(&self.dir.join(PURGED_FILE), &log_id)?;
        self.entries.retain(|&i, _| i > log_id.index());
        self.purged = Some(log_id);
        let mut bytes = Vec::new();
        let mut positions = Vec::with_capacity(self.entries.len());
        for (&index, (entry, _)) in &self.entries {
            positions.push((index, bytes.len() as u64));
            bytes.extend(frame(entry)?);
        }
        let path = self.dir.join(LOG_FILE);
        write_atomically(&path, &bytes)?;
        self.file = OpenOptions::new().read(true).append(true).open(&path)?;
        self.file_end = bytes.len() as u64;
        for (index, position) in positions {
            if let Some(e) = self.entries.get_mut(&index) {
                e.1 = position;
            }
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let inner = self.inner();
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (entry, _))| entry.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let inner = self.inner();
        let last = inner.entries.values().next_back().map(|(e, _)| e.log_id());
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last.or_else(|| inner.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut inner = self.inner();
        write_value(&inner.dir.join(VOTE_FILE), vote)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let mut inner = self.inner();
        write_value(&inner.dir.join(COMMITTED_FILE), &committed)?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let result = self.inner().append(entries.into_iter().collect());
        // Stored means fsynced: openraft hears of the entries only now.
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.inner().truncate_after(last_log_id.as_ref())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.inner().purge(log_id)
    }
}
