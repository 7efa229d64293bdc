//! SASL authentication as a pure core (issue 15, docs/design/0006-security.md): the server side
//! of the mechanisms Sluice offers and the credentials they check.
//!
//! - `mechanism`: the mechanisms by Kafka's names and SCRAM's type codes.
//! - `scram`: SCRAM credentials as Kafka keeps them (salt, iterations, stored key, server
//!   key; never the password) and the server's half of the RFC 5802 exchange.
//! - `plain`: PLAIN's single message (RFC 4616), checked against the SCRAM credentials.
//! - `oauthbearer`: OAUTHBEARER's message (RFC 7628) and the check of its JWT against the
//!   identity provider's keys (a JWKS), issuer, audience and times.
//! - `exchange`: one connection's authentication, token in, token out, whatever the mechanism.
//! - `client`: the client's side of PLAIN and SCRAM (Sluice's CLI logs in with it).
//!
//! Not owned here: sockets, clocks and randomness (the time, the server nonce and the secret
//! behind unknown users' salts are arguments), reading the JWKS file, where credentials are
//! kept (`Credentials` is asked), Kafka's framing of the tokens, and what a principal may do.

mod client;
mod exchange;
mod mechanism;
mod oauthbearer;
mod plain;
mod scram;

pub use client::{ScramClient, plain_message};
pub use exchange::{Credentials, Exchange, Step};
pub use mechanism::Mechanism;
pub use oauthbearer::{
    TokenRules, TokenValidator, ValidToken, client_message as oauthbearer_message,
};
pub use scram::{ScramCredential, salted_password};

/// Why an authentication failed. The text is for the broker's own log and audit line; the
/// client is told only that it failed, never which part was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("{0} is not offered")]
    Unsupported(String),
    #[error("a message after the exchange ended")]
    Finished,
}

fn malformed(what: &'static str, reason: impl Into<String>) -> SaslError {
    SaslError::Malformed {
        what,
        reason: reason.into(),
    }
}
