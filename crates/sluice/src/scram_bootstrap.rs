//! The bootstrap administrator (`sasl_bootstrap_scram`, `sasl_bootstrap_scram_file`): SCRAM
//! credentials written to the metadata log when the node starts, for each user and mechanism
//! that has none yet, so a secured cluster is never open and never without an administrator.
//!
//! Entries take the form of Kafka's `kafka-storage format --add-scram`:
//! `SCRAM-SHA-512=[name=admin,salt="<base64>",saltedpassword="<base64>",iterations=8192]`
//! (a password hash: the password itself appears nowhere), or for convenience
//! `SCRAM-SHA-512=[name=admin,password="admin-secret"]` (a fresh random salt, 4096 iterations
//! unless told). Several entries are separated by commas outside the brackets, or one per
//! line in the file; lines starting with `#` are comments.
//!
//! Not owned here: writing them (the controller's `BootstrapScram` command, which skips users
//! that already have a credential).

use crate::settings::split_list;
use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::{SecureRandom, SystemRandom};
use sluice_controller::{ScramUpsertion, check_upsertion};
use sluice_sasl::{Mechanism, ScramCredential};
use sluice_types::limits::SCRAM_ITERATIONS_MIN;
use std::collections::BTreeMap;
use std::path::Path;

/// Bytes of the salt made for a `password=` entry.
const SALT_BYTES: usize = 32;

/// Every entry of the settings and the file, as credentials to write.
pub(crate) fn credentials(
    entries: &[String],
    file: Option<&Path>,
) -> anyhow::Result<Vec<ScramUpsertion>> {
    let mut all: Vec<String> = entries.to_vec();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("sasl_bootstrap_scram_file {}", path.display()))?;
        all.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    all.iter()
        .map(|entry| {
            parse(entry).with_context(|| format!("bootstrap SCRAM credential {}", shown(entry)))
        })
        .collect()
}

/// An entry as it may be shown: a password is left out.
fn shown(entry: &str) -> String {
    match entry.find("password=") {
        Some(at) if !entry[..at].ends_with("salted") => format!("{}password=...]", &entry[..at]),
        _ => entry.to_string(),
    }
}

fn parse(entry: &str) -> anyhow::Result<ScramUpsertion> {
    let (mechanism, body) = entry
        .split_once('=')
        .context("expected MECHANISM=[name=...,...]")?;
    let mechanism = Mechanism::parse(mechanism.trim())
        .filter(|m| m.scram_type().is_some())
        .with_context(|| {
            format!("{mechanism}: the mechanisms are SCRAM-SHA-256 and SCRAM-SHA-512")
        })?;
    let body = body
        .trim()
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .context("the fields go in brackets: [name=...,...]")?;
    let mut fields = BTreeMap::new();
    for field in split_list(body) {
        let (key, value) = field
            .split_once('=')
            .with_context(|| format!("field {field:?} is not key=value"))?;
        let value = value.trim().trim_matches('"').to_string();
        ensure!(
            fields.insert(key.trim().to_string(), value).is_none(),
            "{key} given twice"
        );
    }
    let take = |key: &str| fields.get(key).cloned();
    let name = take("name").context("no name=")?;
    let iterations: i32 = match take("iterations") {
        Some(i) => i.parse().context("iterations is not a number")?,
        None => SCRAM_ITERATIONS_MIN,
    };
    let credential = match (take("password"), take("salt"), take("saltedpassword")) {
        (Some(password), None, None) => {
            let mut salt = vec![0u8; SALT_BYTES];
            SystemRandom::new()
                .fill(&mut salt)
                .map_err(|_| anyhow::anyhow!("no random source for a salt"))?;
            ScramCredential::from_password(mechanism, password.as_bytes(), salt, iterations)
        }
        (None, Some(salt), Some(salted)) => {
            let salt = BASE64.decode(salt).context("salt is not base64")?;
            let salted = BASE64
                .decode(salted)
                .context("saltedpassword is not base64")?;
            ensure!(
                salted.len() == mechanism.hash_bytes(),
                "saltedpassword of {mechanism} is {} bytes",
                mechanism.hash_bytes()
            );
            ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
        }
        _ => bail!("give either password= or both salt= and saltedpassword="),
    };
    let upsertion = ScramUpsertion {
        name,
        mechanism: mechanism.scram_type().expect("a SCRAM mechanism"),
        iterations,
        salt: credential.salt,
        stored_key: credential.stored_key,
        server_key: credential.server_key,
    };
    check_upsertion(&upsertion).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(upsertion)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_outside_brackets() {
        assert_eq!(
            split_list(
                r#"SCRAM-SHA-256=[name=a,password="x,y"], SCRAM-SHA-512=[name=b,password=z]"#
            ),
            vec![
                r#"SCRAM-SHA-256=[name=a,password="x,y"]"#.to_string(),
                "SCRAM-SHA-512=[name=b,password=z]".to_string()
            ]
        );
    }

    #[test]
    fn a_password_hash_gives_kafkas_keys() {
        // Kafka's documented example: `kafka-storage format --add-scram` with a salted password.
        let entry = r#"SCRAM-SHA-256=[name=alice,salt="MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=",saltedpassword="mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=",iterations=8192]"#;
        let [u] = &credentials(&[entry.to_string()], None).unwrap()[..] else {
            panic!("one credential")
        };
        assert_eq!(
            (u.name.as_str(), u.mechanism, u.iterations),
            ("alice", 1, 8192)
        );
        assert_eq!(
            u.salt,
            BASE64
                .decode("MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=")
                .unwrap()
        );
    }

    #[test]
    fn a_password_entry_verifies_its_password() {
        let [u] = &credentials(
            &["SCRAM-SHA-512=[name=admin,password=\"s3cret\"]".into()],
            None,
        )
        .unwrap()[..] else {
            panic!("one credential")
        };
        let credential = ScramCredential {
            mechanism: Mechanism::ScramSha512,
            salt: u.salt.clone(),
            stored_key: u.stored_key.clone(),
            server_key: u.server_key.clone(),
            iterations: u.iterations,
        };
        assert!(credential.verifies_password(b"s3cret"));
        assert!(!credential.verifies_password(b"other"));
    }

    #[test]
    fn bad_entries_are_refused_without_showing_the_password() {
        for entry in [
            "PLAIN=[name=a,password=x]",
            "SCRAM-SHA-512=name=a,password=x",
            "SCRAM-SHA-512=[password=x]",
            "SCRAM-SHA-512=[name=a]",
            "SCRAM-SHA-512=[name=a,password=x,iterations=100]",
            "SCRAM-SHA-512=[name=a,salt=\"AA==\",saltedpassword=\"AA==\"]",
        ] {
            let e = credentials(&[entry.to_string()], None).unwrap_err();
            assert!(!format!("{e:#}").contains("password=x"), "{e:#}");
        }
    }
}
