//! Security files read again without a restart: the TLS listeners' certificates and the JWKS
//! OAUTHBEARER tokens are checked against, on SIGHUP (`FileReloader::reload`, which the binary
//! calls) and when a file's modification time changes (checked every
//! `TLS_FILES_CHECK_INTERVAL_MS`). A file that no longer reads keeps the last good version in
//! service, with an error line.
//!
//! Not owned here: what a file holds (`tls`, `authentication::jwks`).

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One thing kept from files.
pub(crate) trait Reloadable: Send + Sync + std::fmt::Debug {
    /// What it is, for log lines ("TLS certificates", "OAUTHBEARER JWKS").
    fn what(&self) -> &'static str;
    /// Which one: a listener's name, a file.
    fn source(&self) -> String;
    /// Reads the files again; on an error the previous version stays in service.
    fn reload(&self) -> Result<(), String>;
    /// Whether a file changed since it was last read.
    fn changed_on_disk(&self) -> bool;
}

/// Reads the broker's security files again (SIGHUP).
#[derive(Debug, Clone, Default)]
pub struct FileReloader(pub(crate) Vec<Arc<dyn Reloadable>>);

impl FileReloader {
    pub fn reload(&self) {
        for item in &self.0 {
            let (what, source) = (item.what(), item.source());
            match item.reload() {
                Ok(()) => tracing::info!(%source, "{what} read again"),
                Err(e) => {
                    tracing::error!(%source, error = %e, "{what} not read again; the previous ones still serve")
                }
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads again what changed on disk, checking every `interval`.
    pub(crate) async fn watch(self, interval: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
            let changed: Vec<_> = self
                .0
                .iter()
                .filter(|t| t.changed_on_disk())
                .cloned()
                .collect();
            if !changed.is_empty() {
                FileReloader(changed).reload();
            }
        }
    }
}

/// The modification time of `path`, if it can be read.
pub(crate) fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
