//! The SASL mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER), by the names clients send in SaslHandshake and the type codes
//! Kafka's SCRAM admin APIs use (`ScramMechanism`: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512).

use ring::{digest, hmac, pbkdf2};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
        Mechanism::OAuthBearer,
    ];
    pub const SCRAM: [Mechanism; 2] = [Mechanism::ScramSha256, Mechanism::ScramSha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// By its name, as SASL names are compared: exactly.
    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's SCRAM type code (`ScramMechanism.type()`); `None` for PLAIN and OAUTHBEARER.
    pub fn scram_type(self) -> Option<i8> {
        match self {
            Mechanism::Plain | Mechanism::OAuthBearer => None,
            Mechanism::ScramSha256 => Some(1),
            Mechanism::ScramSha512 => Some(2),
        }
    }

    pub fn from_scram_type(code: i8) -> Option<Mechanism> {
        Mechanism::SCRAM
            .into_iter()
            .find(|m| m.scram_type() == Some(code))
    }

    pub(crate) fn hmac(self) -> hmac::Algorithm {
        match self {
            Mechanism::ScramSha512 => hmac::HMAC_SHA512,
            _ => hmac::HMAC_SHA256,
        }
    }

    pub(crate) fn digest(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::ScramSha512 => &digest::SHA512,
            _ => &digest::SHA256,
        }
    }

    pub(crate) fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::ScramSha512 => pbkdf2::PBKDF2_HMAC_SHA512,
            _ => pbkdf2::PBKDF2_HMAC_SHA256,
        }
    }

    /// Bytes of the hash: of a salted password, a stored key, a server key.
    pub fn hash_bytes(self) -> usize {
        self.digest().output_len()
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
