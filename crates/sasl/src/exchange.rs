//! One connection's authentication: the mechanism the client chose, fed the client's tokens
//! in order, answering each with the server's token until it is done or has failed.

use crate::mechanism::Mechanism;
use crate::oauthbearer::{self, TokenValidator};
use crate::scram::{ScramCredential, ScramServer};
use crate::{SaslError, plain};

/// Where credentials are kept (the metadata image, the identity provider's keys), as the
/// exchange asks for them.
pub trait Credentials {
    fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential>;

    /// What OAUTHBEARER tokens are checked against; without it every token is refused.
    fn token_validator(&self) -> Option<&TokenValidator> {
        None
    }
}

/// What a client's token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this back and wait for the client's next token.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `token` back (it may be empty). `expires_at_unix_ms`:
    /// when the credential itself runs out (an OAUTHBEARER token's `exp`).
    Done {
        user: String,
        token: Vec<u8>,
        expires_at_unix_ms: Option<u64>,
    },
}

pub struct Exchange {
    mechanism: Mechanism,
    /// The user the client named, once it has (for the audit line of a failure).
    claimed_user: Option<String>,
    unknown_user_secret: Vec<u8>,
    state: State,
}

enum State {
    Plain { done: bool },
    Bearer { done: bool },
    Scram(Box<ScramServer>),
}

impl Exchange {
    /// A new exchange. `server_nonce` is SCRAM's fresh random part (printable, no comma);
    /// `unknown_user_secret` is the broker's own secret that unknown users' stand-in salts are
    /// derived from (the same for a broker's lifetime, so asking twice shows the same salt).
    pub fn new(
        mechanism: Mechanism,
        server_nonce: String,
        unknown_user_secret: Vec<u8>,
    ) -> Exchange {
        let state = match mechanism {
            Mechanism::Plain => State::Plain { done: false },
            Mechanism::OAuthBearer => State::Bearer { done: false },
            _ => State::Scram(Box::new(ScramServer::new(server_nonce))),
        };
        Exchange {
            mechanism,
            claimed_user: None,
            unknown_user_secret,
            state,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The user the client said it is, whether or not it proved it.
    pub fn claimed_user(&self) -> Option<&str> {
        self.claimed_user.as_deref()
    }

    /// Takes the client's next token, at `now_unix_ms`. An error ends the exchange: the client
    /// is told it failed, nothing more.
    pub fn step(
        &mut self,
        token: &[u8],
        credentials: &dyn Credentials,
        now_unix_ms: u64,
    ) -> Result<Step, SaslError> {
        let secret = &self.unknown_user_secret;
        match &mut self.state {
            State::Plain { done: true } | State::Bearer { done: true } => Err(SaslError::Finished),
            State::Bearer { done } => {
                *done = true;
                let (jwt, authzid) = oauthbearer::parse_client_message(token)?;
                let validator = credentials
                    .token_validator()
                    .ok_or_else(|| SaslError::Unsupported("OAUTHBEARER without a JWKS".into()))?;
                let valid = validator.validate(&jwt, now_unix_ms)?;
                self.claimed_user = Some(valid.subject.clone());
                if authzid.is_some_and(|a| a != valid.subject) {
                    return Err(SaslError::BadCredentials);
                }
                Ok(Step::Done {
                    user: valid.subject,
                    token: Vec::new(),
                    expires_at_unix_ms: Some(valid.expires_at_unix_ms),
                })
            }
            State::Plain { done } => {
                *done = true;
                let (user, password) = plain::parse(token)?;
                self.claimed_user = Some(user.clone());
                plain::verify(&user, password, credentials, secret)?;
                Ok(Step::Done {
                    user,
                    token: Vec::new(),
                    expires_at_unix_ms: None,
                })
            }
            State::Scram(server) if matches!(**server, ScramServer::AwaitingClientFirst { .. }) => {
                let mechanism = self.mechanism;
                let lookup = |user: &str| credentials.scram(user, mechanism);
                let reply = server.client_first(mechanism, token, lookup, secret)?;
                self.claimed_user = server.user().map(str::to_string);
                Ok(Step::Challenge(reply))
            }
            State::Scram(server) => {
                let (user, token) = server.client_final(token)?;
                Ok(Step::Done {
                    user,
                    token,
                    expires_at_unix_ms: None,
                })
            }
        }
    }
}
