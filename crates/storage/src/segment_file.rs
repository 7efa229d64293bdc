//! Descriptors of segment files, a budgeted resource. The active segment, and any closed one
//! with data not yet fsynced, holds its file open ("pinned"); every other closed segment opens
//! its file when a read, scan or compaction needs it, and the process keeps at most
//! `SEGMENT_FILES_OPEN_MAX` such files open, least recently used first out. So the number of
//! segments does not bound the broker: a log of any length costs a bounded number of
//! descriptors.
//!
//! A handle is named in the cache by an id of its own, never by its path: compaction replaces
//! a segment's file at the same path, and the new segment must never be served the old inode.
//! Dropping a handle drops its cache entry (readers that hold the `Arc<File>` keep reading).
//!
//! A read plan is made under the log's lock, so a cache miss opens the file there: an
//! `open(2)`, no data read or written.
//!
//! Does not own: what is in the file (`segment.rs`).

use sluice_types::limits::SEGMENT_FILES_OPEN_MAX;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub(crate) struct SegmentFile {
    id: u64,
    path: PathBuf,
    pinned: Option<Arc<File>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl SegmentFile {
    /// A handle over `file` (already open at `path`), pinned.
    pub(crate) fn pinned(path: &Path, file: File) -> SegmentFile {
        SegmentFile {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path: path.to_path_buf(),
            pinned: Some(Arc::new(file)),
        }
    }

    /// The open file: the pinned one, a cached one, or one opened now.
    pub(crate) fn get(&self) -> std::io::Result<Arc<File>> {
        match &self.pinned {
            Some(file) => Ok(file.clone()),
            None => cache().get_or_open(self.id, &self.path),
        }
    }

    /// Stops holding the file open (it is closed once no reader holds it; the next read
    /// opens it through the cache).
    pub(crate) fn unpin(&mut self) {
        self.pinned = None;
    }

    /// Holds the file open from now on (a closed segment that becomes active again).
    pub(crate) fn pin(&mut self) -> std::io::Result<()> {
        if self.pinned.is_none() {
            self.pinned = Some(self.get()?);
        }
        Ok(())
    }

    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned.is_some()
    }

    /// The held file, without touching the cache (the write path).
    pub(crate) fn pinned_file(&self) -> Option<&File> {
        self.pinned.as_deref()
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        cache().forget(self.id);
    }
}

/// Open files of unpinned segments, by handle id, with the tick of their last use.
struct Cache {
    open: Mutex<HashMap<u64, (Arc<File>, u64)>>,
    tick: AtomicU64,
}

fn cache() -> &'static Cache {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Cache {
        open: Mutex::new(HashMap::new()),
        tick: AtomicU64::new(0),
    })
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Arc<File>, u64)>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_or_open(&self, id: u64, path: &Path) -> std::io::Result<Arc<File>> {
        let now = self.tick.fetch_add(1, Ordering::Relaxed);
        if let Some((file, used)) = self.lock().get_mut(&id) {
            *used = now;
            return Ok(file.clone());
        }
        // Opened outside the cache's lock; two readers racing both open, one entry stays.
        let file = Arc::new(OpenOptions::new().read(true).append(true).open(path)?);
        self.put(id, file.clone());
        Ok(file)
    }

    fn put(&self, id: u64, file: Arc<File>) {
        let now = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut open = self.lock();
        open.insert(id, (file, now));
        while open.len() > SEGMENT_FILES_OPEN_MAX {
            let oldest = open
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(&id, _)| id)
                .expect("not empty");
            open.remove(&oldest);
        }
    }

    fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }
}
