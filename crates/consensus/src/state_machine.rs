//! `StateMachine`: openraft's state machine over the controller. Each committed entry's
//! metadata record is replayed into the `QuorumController` (so its image is every broker's
//! image), and a snapshot is the image as records (`MetadataImage::to_records`), each encoded
//! and length-prefixed, behind the snapshot's meta.
//!
//! The applied state lives in memory and in the latest snapshot, which is written to
//! `raft-snapshot` (atomically, fsynced) when it is built or installed: a restart loads it and
//! openraft replays the log after it. Snapshot file: `u32 length | postcard(meta)`, then the
//! records, each `u32 length | record` (`MetadataRecord::encode`).
//!
//! Every change to the image is published (`images`): a copy of the image behind an `Arc`,
//! taken once per applied run of entries, never per read, so a broker's handlers read the
//! committed metadata without taking the state machine's lock.

use crate::TypeConfig;
use crate::log_store::write_atomically;
use futures_util::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use sluice_controller::{ControllerConfig, MetadataImage, MetadataRecord, QuorumController};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

const SNAPSHOT_FILE: &str = "raft-snapshot";

type LogId = LogIdOf<TypeConfig>;
type Meta = SnapshotMetaOf<TypeConfig>;
type Membership = StoredMembershipOf<TypeConfig>;

/// The state machine; cloning shares it (the snapshot builder is a clone).
#[derive(Debug, Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    published: Arc<watch::Sender<Arc<MetadataImage>>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    controller: QuorumController,
    config: ControllerConfig,
    last_applied: Option<LogId>,
    membership: Membership,
    snapshot: Option<(Meta, Vec<u8>)>,
}

impl StateMachine {
    /// Opens the state machine of `dir`: its latest snapshot, if any.
    pub fn open(dir: &Path, config: ControllerConfig) -> io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            controller: QuorumController::new(config),
            config,
            last_applied: None,
            membership: Membership::default(),
            snapshot: None,
        };
        match std::fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => {
                let meta = inner.load(&bytes)?;
                inner.snapshot = Some((meta, bytes));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let (published, _) = watch::channel(Arc::new(inner.controller.image().clone()));
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(inner)),
            published: Arc::new(published),
        })
    }

    /// The committed image as it changes: the latest copy now, and a notice at each change.
    pub fn images(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.published.subscribe()
    }

    /// Publishes the image as it stands (after entries or a snapshot were applied).
    fn publish(&self) {
        let image = Arc::new(self.inner().controller.image().clone());
        self.published.send_replace(image);
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the controller (its image is the committed metadata).
    pub fn with_controller<T>(&self, f: impl FnOnce(&mut QuorumController) -> T) -> T {
        f(&mut self.inner().controller)
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn take_frame<'a>(bytes: &mut &'a [u8]) -> io::Result<&'a [u8]> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| invalid("a snapshot frame cut short"))?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(invalid("a snapshot frame cut short"));
    }
    let (frame, rest) = rest.split_at(len);
    *bytes = rest;
    Ok(frame)
}

fn put_frame(out: &mut Vec<u8>, frame: &[u8]) {
    out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    out.extend_from_slice(frame);
}

impl Inner {
    /// Replaces the state with the snapshot `bytes`; returns its meta.
    fn load(&mut self, bytes: &[u8]) -> io::Result<Meta> {
        let mut rest = bytes;
        let meta: Meta = postcard::from_bytes(take_frame(&mut rest)?).map_err(invalid)?;
        let mut controller = QuorumController::new(self.config);
        while !rest.is_empty() {
            let record = MetadataRecord::decode(take_frame(&mut rest)?).map_err(invalid)?;
            controller.replay(&record);
        }
        self.controller = controller;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(meta)
    }

    fn encode_snapshot(&self, meta: &Meta) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        put_frame(&mut bytes, &postcard::to_allocvec(meta).map_err(invalid)?);
        for record in self.controller.image().to_records() {
            put_frame(&mut bytes, &record.encode());
        }
        Ok(bytes)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<TypeConfig, Self::SnapshotData>, io::Error> {
        // Encoded under the lock (memory only), written without it.
        let (meta, bytes, dir) = {
            let inner = self.inner();
            let meta = Meta {
                last_log_id: inner.last_applied,
                last_membership: inner.membership.clone(),
            };
            let bytes = inner.encode_snapshot(&meta)?;
            (meta, bytes, inner.dir.clone())
        };
        write_atomically(&dir.join(SNAPSHOT_FILE), &bytes)?;
        self.inner().snapshot = Some((meta.clone(), bytes.clone()));
        Ok(SnapshotOf::<TypeConfig, Self::SnapshotData> {
            meta,
            snapshot: Cursor::new(bytes),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), io::Error> {
        let inner = self.inner();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let changed = {
                let mut inner = self.inner();
                inner.last_applied = Some(entry.log_id);
                match &entry.payload {
                    EntryPayload::Blank => false,
                    EntryPayload::Normal(batch) => {
                        batch.0.iter().for_each(|r| inner.controller.replay(r));
                        !batch.0.is_empty()
                    }
                    EntryPayload::Membership(m) => {
                        inner.membership = Membership::new(Some(entry.log_id), m.clone());
                        false
                    }
                }
            };
            // Published before the answer, so a command's caller finds its records in the
            // image it reads next.
            if changed {
                self.publish();
            }
            if let Some(responder) = responder {
                responder.send(());
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.into_inner();
        let dir = {
            let mut inner = self.inner();
            let stored = inner.load(&bytes)?;
            if stored.last_log_id != meta.last_log_id {
                return Err(invalid("a snapshot whose meta is not the one it came with"));
            }
            inner.dir.clone()
        };
        self.publish();
        // Written without the lock; kept as the current snapshot once durable.
        write_atomically(&dir.join(SNAPSHOT_FILE), &bytes)?;
        self.inner().snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Self::SnapshotData>>, io::Error> {
        let inner = self.inner();
        Ok(inner.snapshot.as_ref().map(|(meta, bytes)| SnapshotOf::<
            TypeConfig,
            Self::SnapshotData,
        > {
            meta: meta.clone(),
            snapshot: Cursor::new(bytes.clone()),
        }))
    }
}
