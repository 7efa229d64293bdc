//! The client's side of PLAIN and SCRAM, for Sluice's own client (the CLI): the messages a
//! client sends, the proof of the password, and the check of the server's signature (a server
//! that cannot prove it knows the credential is refused). The client nonce is an argument.
//!
//! Not owned here: sending the messages (the client crate, in SaslAuthenticate requests).

use crate::mechanism::Mechanism;
use crate::scram::{hash, hmac, salted_password};
use crate::{SaslError, malformed};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sluice_types::limits::{SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN};
use subtle::ConstantTimeEq;

/// PLAIN's one message: no authorization id, the user, the password.
pub fn plain_message(user: &str, password: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(user.len() + password.len() + 2);
    message.push(0);
    message.extend_from_slice(user.as_bytes());
    message.push(0);
    message.extend_from_slice(password.as_bytes());
    message
}

/// One SCRAM login, as the client runs it.
pub struct ScramClient {
    mechanism: Mechanism,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    /// The server signature that proves the server, once the final message is made.
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// `client_nonce`: fresh random printable characters, no comma.
    pub fn new(mechanism: Mechanism, user: &str, password: &str, client_nonce: String) -> Self {
        let escaped = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={escaped},r={client_nonce}"),
            client_nonce,
            expected_server_signature: None,
        }
    }

    pub fn first_message(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final message for the server's first, with the proof of the password.
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let bad = |reason: &str| malformed("server-first message", reason);
        let text = std::str::from_utf8(server_first).map_err(|_| bad("not UTF-8"))?;
        let field = |name: &str| text.split(',').find_map(|f| f.strip_prefix(name));
        let nonce = field("r=").ok_or_else(|| bad("no nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(bad("the nonce does not extend the client's"));
        }
        let salt = field("s=")
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or_else(|| bad("no salt"))?;
        let iterations: i32 = field("i=")
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| bad("no iteration count"))?;
        if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&iterations) {
            return Err(bad("iteration count out of bounds"));
        }
        let m = self.mechanism;
        let salted = salted_password(m, self.password.as_bytes(), &salt, iterations as u32);
        let client_key = hmac(m, &salted, b"Client Key");
        let stored_key = hash(m, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = hmac(m, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(m, &salted, b"Server Key");
        self.expected_server_signature = Some(hmac(m, &server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server proves it holds the credential.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let bad = |reason: &str| malformed("server-final message", reason);
        let text = std::str::from_utf8(server_final).map_err(|_| bad("not UTF-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(bad(error));
        }
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or_else(|| bad("no verifier"))?;
        let expected = self
            .expected_server_signature
            .as_ref()
            .ok_or(SaslError::Finished)?;
        if bool::from(signature.ct_eq(expected)) {
            Ok(())
        } else {
            Err(bad("the server's signature is wrong"))
        }
    }
}
