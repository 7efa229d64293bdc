//! The identity provider's public keys OAUTHBEARER tokens are checked against: a JWKS file
//! (Kafka's `sasl.oauthbearer.jwks.endpoint.url` naming a `file:` URL), read at start and again
//! on SIGHUP or when it changes, as identity providers rotate their keys. A file that no longer
//! reads keeps the last good keys in service.
//!
//! Not owned here: the check of a token (`sluice_sasl::TokenValidator`).

use crate::reload::{Reloadable, modified};
use arc_swap::ArcSwap;
use sluice_sasl::{TokenRules, TokenValidator};
use sluice_types::limits::JWKS_BYTES_MAX;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug)]
pub(crate) struct ReloadableJwks {
    path: PathBuf,
    rules: TokenRules,
    current: ArcSwap<TokenValidator>,
    read_at: Mutex<Option<SystemTime>>,
}

impl ReloadableJwks {
    pub(crate) fn new(path: PathBuf, rules: TokenRules) -> Result<ReloadableJwks, String> {
        let read_at = modified(&path);
        let validator = read(&path, &rules)?;
        Ok(ReloadableJwks {
            path,
            rules,
            current: ArcSwap::from_pointee(validator),
            read_at: Mutex::new(read_at),
        })
    }

    /// The keys now in service.
    pub(crate) fn validator(&self) -> Arc<TokenValidator> {
        self.current.load_full()
    }
}

impl Reloadable for ReloadableJwks {
    fn what(&self) -> &'static str {
        "OAUTHBEARER JWKS"
    }

    fn source(&self) -> String {
        self.path.display().to_string()
    }

    fn reload(&self) -> Result<(), String> {
        let read_at = modified(&self.path);
        let validator = read(&self.path, &self.rules)?;
        self.current.store(Arc::new(validator));
        *self.read_at.lock().expect("jwks lock") = read_at;
        Ok(())
    }

    fn changed_on_disk(&self) -> bool {
        *self.read_at.lock().expect("jwks lock") != modified(&self.path)
    }
}

fn read(path: &Path, rules: &TokenRules) -> Result<TokenValidator, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(JWKS_BYTES_MAX as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    TokenValidator::new(&bytes, rules.clone()).map_err(|e| format!("{}: {e}", path.display()))
}
