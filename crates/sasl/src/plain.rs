//! PLAIN (RFC 4616): one message, `[authzid] NUL authcid NUL password`. Sluice checks the
//! password against the user's SCRAM credential (SCRAM-SHA-512 first, then SCRAM-SHA-256), as
//! Redpanda does, so one set of users serves both mechanisms and no password is kept in
//! plain text. PLAIN sends the password itself: offer it only over TLS (SASL_SSL).

use crate::exchange::Credentials;
use crate::mechanism::Mechanism;
use crate::scram::ScramCredential;
use crate::{SaslError, malformed};
use sluice_types::limits::SASL_USER_NAME_BYTES_MAX;

/// PLAIN's message as the user name and password.
pub(crate) fn parse(message: &[u8]) -> Result<(String, &[u8]), SaslError> {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("PLAIN message", "not three NUL-separated parts"));
    };
    let user = std::str::from_utf8(user)
        .ok()
        .filter(|u| !u.is_empty() && u.len() <= SASL_USER_NAME_BYTES_MAX)
        .ok_or_else(|| malformed("PLAIN message", "user name"))?;
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(malformed(
            "PLAIN message",
            "authorization id differs from the user name",
        ));
    }
    Ok((user.to_string(), password))
}

/// Whether `password` is `user`'s.
pub(crate) fn verify(
    user: &str,
    password: &[u8],
    credentials: &dyn Credentials,
    unknown_user_secret: &[u8],
) -> Result<(), SaslError> {
    let found = [Mechanism::ScramSha512, Mechanism::ScramSha256]
        .into_iter()
        .find_map(|m| credentials.scram(user, m));
    // An unknown user costs what a known one does, so timing does not tell them apart.
    let (credential, known) = match found {
        Some(c) => (c, true),
        None => (
            ScramCredential::unknown_user(Mechanism::ScramSha512, user, unknown_user_secret),
            false,
        ),
    };
    if credential.verifies_password(password) && known {
        Ok(())
    } else {
        Err(SaslError::BadCredentials)
    }
}
