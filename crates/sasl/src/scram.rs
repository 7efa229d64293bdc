//! SCRAM (RFC 5802; SHA-256 and SHA-512 as RFC 7677 and Kafka name them): the credential a
//! broker keeps for a user and mechanism, and the server's half of the exchange.
//!
//! The credential is what Kafka's `ScramCredential` holds: the salt, the iteration count, the
//! stored key `H(HMAC(SaltedPassword, "Client Key"))` and the server key
//! `HMAC(SaltedPassword, "Server Key")`, where `SaltedPassword = PBKDF2(password, salt, i)`.
//! From these the broker checks a client's proof and proves itself, and cannot recover the
//! password.
//!
//! The exchange: client-first (`n,,n=user,r=cnonce`), server-first (`r=cnonce+snonce,s=salt,
//! i=iterations`), client-final (`c=biws,r=nonce,p=proof`), server-final (`v=signature`).
//! Channel binding (`p=`) and Kafka's delegation tokens (`tokenauth=true`) are refused. An
//! unknown user is not told apart from a wrong password: it gets a server-first with a salt
//! derived from the user name and a secret of the broker's, and fails at client-final as a
//! wrong password does.

use crate::mechanism::Mechanism;
use crate::{SaslError, malformed};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac, pbkdf2};
use sluice_types::limits::{SASL_USER_NAME_BYTES_MAX, SCRAM_ITERATIONS_MIN};
use std::num::NonZeroU32;
use subtle::ConstantTimeEq;

/// A user's SCRAM credential for one mechanism, as kept in the metadata log.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub mechanism: Mechanism,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// Keys and salts stay out of logs.
impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// `Hi(password, salt, iterations)` of RFC 5802: PBKDF2 with the mechanism's HMAC.
pub fn salted_password(
    mechanism: Mechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut out = vec![0; mechanism.hash_bytes()];
    let iterations = NonZeroU32::new(iterations.max(1)).expect("at least one");
    pbkdf2::derive(mechanism.pbkdf2(), iterations, salt, password, &mut out);
    out
}

pub(crate) fn hmac(mechanism: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(mechanism.hmac(), key);
    hmac::sign(&key, data).as_ref().to_vec()
}

pub(crate) fn hash(mechanism: Mechanism, data: &[u8]) -> Vec<u8> {
    digest::digest(mechanism.digest(), data).as_ref().to_vec()
}

impl ScramCredential {
    /// The credential of a salted password (what AlterUserScramCredentials carries: the
    /// client salts and hashes, the password never reaches the broker).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = hmac(mechanism, salted_password, b"Client Key");
        ScramCredential {
            mechanism,
            salt,
            stored_key: hash(mechanism, &client_key),
            server_key: hmac(mechanism, salted_password, b"Server Key"),
            iterations,
        }
    }

    pub fn from_password(
        mechanism: Mechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: i32,
    ) -> ScramCredential {
        let salted = salted_password(mechanism, password, &salt, iterations.max(1) as u32);
        ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// Whether `password` is the one this credential was made from (PLAIN's check: the
    /// broker derives what a SCRAM client would, at the credential's own cost).
    pub fn verifies_password(&self, password: &[u8]) -> bool {
        let derived = ScramCredential::from_password(
            self.mechanism,
            password,
            self.salt.clone(),
            self.iterations,
        );
        bool::from(derived.stored_key.ct_eq(&self.stored_key))
    }

    /// A credential no password matches, the same for the same user and secret: what an
    /// unknown user is answered with.
    pub(crate) fn unknown_user(mechanism: Mechanism, user: &str, secret: &[u8]) -> ScramCredential {
        let derive = |label: &str| hmac(mechanism, secret, format!("{label}\0{user}").as_bytes());
        ScramCredential {
            mechanism,
            salt: derive("salt"),
            stored_key: derive("stored"),
            server_key: derive("server"),
            iterations: SCRAM_ITERATIONS_MIN,
        }
    }
}

/// Where a SCRAM exchange stands.
pub(crate) enum ScramServer {
    AwaitingClientFirst {
        server_nonce: String,
    },
    AwaitingClientFinal {
        user: String,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        credential: ScramCredential,
        /// False when `credential` stands in for an unknown user.
        known: bool,
    },
    Done,
}

/// The parts of a client-first message the server uses.
struct ClientFirst<'a> {
    gs2_header: &'a str,
    bare: &'a str,
    user: String,
    client_nonce: &'a str,
}

impl ScramServer {
    pub(crate) fn new(server_nonce: String) -> ScramServer {
        ScramServer::AwaitingClientFirst { server_nonce }
    }

    /// The user client-first named.
    pub(crate) fn user(&self) -> Option<&str> {
        match self {
            ScramServer::AwaitingClientFinal { user, .. } => Some(user),
            _ => None,
        }
    }

    /// Answers client-first with server-first. `lookup` finds the user's credential.
    pub(crate) fn client_first(
        &mut self,
        mechanism: Mechanism,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        unknown_user_secret: &[u8],
    ) -> Result<Vec<u8>, SaslError> {
        let ScramServer::AwaitingClientFirst { server_nonce } = self else {
            return Err(SaslError::Finished);
        };
        let text = std::str::from_utf8(message)
            .map_err(|_| malformed("client-first message", "not UTF-8"))?;
        let first = parse_client_first(text)?;
        let found = lookup(&first.user).filter(|c| c.mechanism == mechanism);
        let known = found.is_some();
        let credential = found.unwrap_or_else(|| {
            ScramCredential::unknown_user(mechanism, &first.user, unknown_user_secret)
        });
        let nonce = format!("{}{}", first.client_nonce, server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        *self = ScramServer::AwaitingClientFinal {
            user: first.user,
            gs2_header: first.gs2_header.to_string(),
            client_first_bare: first.bare.to_string(),
            server_first,
            nonce,
            credential,
            known,
        };
        Ok(reply)
    }

    /// Checks client-final's proof; the user and server-final when it holds.
    pub(crate) fn client_final(&mut self, message: &[u8]) -> Result<(String, Vec<u8>), SaslError> {
        let ScramServer::AwaitingClientFinal {
            user,
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
            credential,
            known,
        } = std::mem::replace(self, ScramServer::Done)
        else {
            return Err(SaslError::Finished);
        };
        let text = std::str::from_utf8(message)
            .map_err(|_| malformed("client-final message", "not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("client-final message", "no proof"))?;
        let mut fields = without_proof.split(',');
        let channel_binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(|| malformed("client-final message", "no channel binding"))?;
        let final_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(|| malformed("client-final message", "no nonce"))?;
        if BASE64.decode(channel_binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(malformed("client-final message", "channel binding differs"));
        }
        // RFC 5802 wants the nonce itself; librdkafka before 2.6.1 sends the client's part
        // once more in front of it. Kafka accepts both (`endsWith`, since 3.8.1), and so do we:
        // the server's fresh part is there either way, and the proof covers what was sent.
        if !final_nonce.ends_with(&nonce) {
            return Err(malformed("client-final message", "nonce differs"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| malformed("client-final message", "proof is not base64"))?;
        let mechanism = credential.mechanism;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac(mechanism, &credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(SaslError::BadCredentials);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let matches = bool::from(hash(mechanism, &client_key).ct_eq(&credential.stored_key));
        if !(matches && known) {
            return Err(SaslError::BadCredentials);
        }
        let server_signature = hmac(mechanism, &credential.server_key, auth_message.as_bytes());
        Ok((
            user,
            format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        ))
    }
}

fn parse_client_first(text: &str) -> Result<ClientFirst<'_>, SaslError> {
    let bad = |reason: &str| malformed("client-first message", reason);
    // gs2-header: a channel-binding flag and an optional authorization id, each followed by
    // a comma.
    let (flag, rest) = text.split_once(',').ok_or_else(|| bad("no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(SaslError::Unsupported("SCRAM channel binding".into()));
        }
        _ => return Err(bad("unknown channel-binding flag")),
    }
    let (authzid, bare) = rest.split_once(',').ok_or_else(|| bad("no GS2 header"))?;
    let gs2_header = &text[..flag.len() + authzid.len() + 2];
    let mut fields = bare.split(',');
    let user_field = fields.next().unwrap_or_default();
    if user_field.starts_with("m=") {
        return Err(bad("mandatory extension"));
    }
    let user = user_field
        .strip_prefix("n=")
        .ok_or_else(|| bad("no user name"))
        .and_then(decode_sasl_name)?;
    let client_nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .ok_or_else(|| bad("no nonce"))?;
    for extension in fields {
        if extension.starts_with("tokenauth=") {
            return Err(SaslError::Unsupported("delegation tokens".into()));
        }
    }
    if !authzid.is_empty() {
        let authzid = authzid
            .strip_prefix("a=")
            .ok_or_else(|| bad("authorization id"))
            .and_then(decode_sasl_name)?;
        if authzid != user {
            return Err(bad("authorization id differs from the user name"));
        }
    }
    Ok(ClientFirst {
        gs2_header,
        bare,
        user,
        client_nonce,
    })
}

/// A `saslname`: `=2C` is a comma, `=3D` an equals sign, any other `=` is malformed.
fn decode_sasl_name(text: &str) -> Result<String, SaslError> {
    if text.is_empty() || text.len() > SASL_USER_NAME_BYTES_MAX {
        return Err(malformed("user name", "empty or too long"));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("user name", "bad escape")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}
