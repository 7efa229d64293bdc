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
//! - `raft-reserve`: `RESERVE_BYTES` of zeros, written at open when there is room. The metadata
//!   log shares its disk with the partitions; when a write fails because that disk is full,
//!   the reserve is deleted and the write tried once more, so the cluster's metadata (a
//!   broker's registration, a leader's first entry after a restart) still moves while the
//!   partitions refuse appends. The next open writes the reserve again.
//!
//! A purge rewrites `raft-log` without the purged entries (purges follow snapshots, so they are
//! rare). The whole log is also kept in memory: the metadata log is small, and a snapshot lets
//! its prefix go.
//!
//! Two locks: the files', held by the writer across its writes and fsyncs (openraft writes
//! from one task at a time), and the entries', which readers take and a writer takes only to
//! record a finished write, so no reader ever waits on an fsync. The writes are small and rare
//! (metadata changes and votes) and happen on the task that calls; a busy cluster would want
//! them on a writer thread of their own.

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
const RESERVE_FILE: &str = "raft-reserve";
/// Room kept for the metadata log on a disk that fills up: thousands of metadata entries.
const RESERVE_BYTES: usize = 1024 * 1024;
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
    /// What readers see, locked only to look or to record a finished write.
    state: Arc<Mutex<State>>,
    /// The files, locked by the one writing (openraft writes from one task at a time); no
    /// reader waits on it, so an fsync holds up nobody but the writer.
    files: Arc<Mutex<Files>>,
}

#[derive(Debug)]
struct State {
    /// Every entry still in the log, with where its frame starts in `raft-log`.
    entries: Entries,
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

#[derive(Debug)]
struct Files {
    dir: PathBuf,
    log: File,
    log_end: u64,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn or damaged tail.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let (mut entries, valid_end) = read_frames(&mut log)?;
        if valid_end < log.metadata()?.len() {
            tracing::warn!(file = %path.display(), valid_end, "cutting a torn tail off the metadata log");
            log.set_len(valid_end)?;
            log.sync_all()?;
        }
        let purged: Option<LogId> = read_value(&dir.join(PURGED_FILE))?;
        if let Some(purged) = purged {
            // A crash between writing `raft-purged` and rewriting the log leaves purged
            // entries in the file: they go now.
            entries.retain(|&i, _| i > purged.index());
        }
        let state = State {
            entries,
            vote: read_value(&dir.join(VOTE_FILE))?,
            committed: read_value::<Option<LogId>>(&dir.join(COMMITTED_FILE))?.flatten(),
            purged,
        };
        let files = Files {
            dir: dir.to_path_buf(),
            log,
            log_end: valid_end,
        };
        files.keep_reserve();
        Ok(LogStore {
            state: Arc::new(Mutex::new(state)),
            files: Arc::new(Mutex::new(files)),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn files(&self) -> MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append_entries(&self, entries: Vec<Entry>) -> io::Result<()> {
        let mut files = self.files();
        let placed = files.with_room(|f| f.append(&entries))?;
        let mut state = self.state();
        for (entry, position) in entries.into_iter().zip(placed) {
            state.entries.insert(entry.index(), (entry, position));
        }
        Ok(())
    }

    /// Removes every entry after `last` (all of them if None), durably.
    fn truncate_entries_after(&self, last: Option<&LogId>) -> io::Result<()> {
        let mut files = self.files();
        let first_gone = last.map_or(0, |l| l.index() + 1);
        let position = self
            .state()
            .entries
            .range(first_gone..)
            .next()
            .map(|(_, (_, position))| *position);
        let Some(position) = position else {
            return Ok(());
        };
        files.cut(position)?;
        self.state().entries.retain(|&i, _| i < first_gone);
        Ok(())
    }

    /// Forgets every entry up to `log_id`: the purge point first (so a crash never brings
    /// them back as live), then a rewrite of the log without them.
    fn purge_entries(&self, log_id: LogId) -> io::Result<()> {
        let mut files = self.files();
        write_value(&files.dir.join(PURGED_FILE), &log_id)?;
        let kept: Vec<Entry> = {
            let mut state = self.state();
            state.entries.retain(|&i, _| i > log_id.index());
            state.purged = Some(log_id);
            state.entries.values().map(|(e, _)| e.clone()).collect()
        };
        let positions = files.with_room(|f| f.rewrite(&kept))?;
        let mut state = self.state();
        for (entry, position) in kept.iter().zip(positions) {
            if let Some(e) = state.entries.get_mut(&entry.index()) {
                e.1 = position;
            }
        }
        Ok(())
    }

    /// Writes `value` durably to `name` (under the writer's lock), then records it.
    fn save(
        &self,
        name: &str,
        value: &impl Serialize,
        record: impl FnOnce(&mut State),
    ) -> io::Result<()> {
        let mut files = self.files();
        files.with_room(|f| write_value(&f.dir.join(name), value))?;
        record(&mut self.state());
        Ok(())
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
fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

fn write_value<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = postcard::to_allocvec(value).map_err(invalid)?;
    write_atomically(path, &bytes)
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        // A half-written file would hold on to the room a retry needs.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

impl Files {
    /// Writes the reserve if it is missing and there is room for it.
    fn keep_reserve(&self) {
        let path = self.dir.join(RESERVE_FILE);
        if path.exists() {
            return;
        }
        if let Err(e) = write_atomically(&path, &vec![0u8; RESERVE_BYTES]) {
            tracing::warn!(error = %e, "no room for the metadata log's reserve on its disk");
        }
    }

    /// Runs `write`; if the disk is full, gives up the reserve and runs it once more.
    fn with_room<T>(
        &mut self,
        mut write: impl FnMut(&mut Files) -> io::Result<T>,
    ) -> io::Result<T> {
        match write(self) {
            Err(e) if is_disk_full(&e) && self.release_reserve() => write(self),
            other => other,
        }
    }

    /// Deletes the reserve; whether there was one.
    fn release_reserve(&self) -> bool {
        let released = std::fs::remove_file(self.dir.join(RESERVE_FILE)).is_ok();
        if released {
            tracing::warn!(
                dir = %self.dir.display(),
                "the disk is full: the metadata log released its reserve to go on"
            );
        }
        released
    }

    /// Appends the entries' frames and fsyncs them; returns where each frame starts.
    fn append(&mut self, entries: &[Entry]) -> io::Result<Vec<u64>> {
        let mut bytes = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for entry in entries {
            positions.push(self.log_end + bytes.len() as u64);
            bytes.extend(frame(entry)?);
        }
        if let Err(e) = self.log.write_all(&bytes) {
            // Nothing of a failed write may stay: the next append must land on a frame boundary.
            self.log.set_len(self.log_end)?;
            return Err(e);
        }
        self.log.sync_data()?;
        self.log_end += bytes.len() as u64;
        Ok(positions)
    }

    fn cut(&mut self, position: u64) -> io::Result<()> {
        self.log.set_len(position)?;
        self.log.sync_all()?;
        self.log_end = position;
        Ok(())
    }

    /// Replaces the log file with `entries` alone; returns where each frame starts.
    fn rewrite(&mut self, entries: &[Entry]) -> io::Result<Vec<u64>> {
        let mut bytes = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for entry in entries {
            positions.push(bytes.len() as u64);
            bytes.extend(frame(entry)?);
        }
        let path = self.dir.join(LOG_FILE);
        write_atomically(&path, &bytes)?;
        self.log = OpenOptions::new().read(true).append(true).open(&path)?;
        self.log_end = bytes.len() as u64;
        Ok(positions)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let state = self.state();
        Ok(state
            .entries
            .range(range)
            .map(|(_, (entry, _))| entry.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.state().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let state = self.state();
        let last = state.entries.values().next_back().map(|(e, _)| e.log_id());
        Ok(LogState {
            last_purged_log_id: state.purged,
            last_log_id: last.or(state.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.save(VOTE_FILE, vote, |s| s.vote = Some(*vote))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.save(COMMITTED_FILE, &committed, |s| s.committed = committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.state().committed)
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
        let result = self.append_entries(entries.into_iter().collect());
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
        self.truncate_entries_after(last_log_id.as_ref())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.purge_entries(log_id)
    }
}
