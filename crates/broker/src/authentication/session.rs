//! One connection's authentication, decided on its reader before a frame is dispatched.
//!
//! On a SASL listener a connection may send ApiVersions, then SaslHandshake naming an offered
//! mechanism, then the exchange's tokens: in SaslAuthenticate requests after a v1 handshake,
//! or as raw length-prefixed frames after a v0 one (the framing before KIP-152, which old
//! clients still use). Any other request before it has authenticated closes the connection, so
//! does a frame above `SASL_RECEIVE_BYTES_MAX`, and so does not finishing within
//! `request_timeout_ms` of connecting. A failure answers SASL_AUTHENTICATION_FAILED with no hint
//! which part was wrong, after `SASL_FAILURE_DELAY_MS`, and closes; it is an audit line
//! (`sluice::audit`, `event=authentication_failed`) and a metric.
//!
//! Re-authentication (KIP-368): with `connections.max.reauth.ms` set, SaslAuthenticate (v1+)
//! tells the client the session's lifetime; it sends SaslHandshake and SaslAuthenticate again
//! on the same connection, with the same mechanism and as the same principal, before the
//! lifetime ends. A request after it has ended closes the connection (clients that cannot
//! re-authenticate simply reconnect).
//!
//! An OAUTHBEARER session also ends when its token expires, if that comes first (with
//! `connections.max.reauth.ms` set; Kafka does the same).
//!
//! On a listener without SASL, SaslHandshake and SaslAuthenticate answer ILLEGAL_SASL_STATE,
//! as Kafka's do.

use super::{ANONYMOUS, DELEGATE_MECHANISM, ImageCredentials};
use crate::authorization::Caller;
use crate::dispatch::{Pending, Reply, ready};
use crate::server::Broker;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_protocol::{decode_body, decode_request, encode_response, peek_header};
use sluice_sasl::{Exchange, Mechanism, Step};
use sluice_types::limits::{SASL_FAILURE_DELAY_MS, SASL_RECEIVE_BYTES_MAX};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct Session {
    sasl: bool,
    /// The in-process listener: its connections may take a caller's principal
    /// (`DELEGATE_MECHANISM`) instead of SASL.
    internal: bool,
    /// After a SaslHandshake naming `DELEGATE_MECHANISM`: the next SaslAuthenticate says who.
    delegating: bool,
    /// Whether this SASL listener also takes `DELEGATE_MECHANISM` from the other brokers'
    /// in-process clients (`offer_remote_delegation`).
    remote_delegation: bool,
    peer: SocketAddr,
    /// Whether the connection may send requests: from the start on a listener without SASL,
    /// once logged in on a SASL one (who it is: `caller`).
    authenticated: bool,
    /// The mechanism the connection authenticated with: re-authentication must use it.
    mechanism: Option<Mechanism>,
    /// An exchange under way, between SaslHandshake and its last token.
    exchange: Option<Exchange>,
    /// After a v0 SaslHandshake: the next frames are the exchange's raw tokens.
    raw_tokens: bool,
    /// When a connection that has not authenticated is closed.
    authenticate_by: Option<Instant>,
    /// When the authentication runs out (`connections.max.reauth.ms`).
    expires_at: Option<Instant>,
    /// The principal and address handlers check ACLs against.
    caller: Caller,
}

/// What the reader does with a frame.
pub(crate) enum Admit {
    /// A request for its handler.
    Dispatch(Bytes),
    /// Answered here.
    Answer(Pending),
    /// Answered here; then the connection closes.
    AnswerAndClose(Pending),
    /// Closed at once, for this reason (a `sluice_connections_closed` reason).
    Close(&'static str),
}

/// What a client's token led to.
enum Stepped {
    Challenge(Vec<u8>),
    /// Authenticated: the last token, and the session's lifetime (0: unbounded).
    Done {
        token: Vec<u8>,
        lifetime_ms: u64,
    },
    Failed,
}

impl Session {
    /// A session on a listener asking SASL authentication first (`sasl`) or not; `principal`:
    /// who the connection is until SASL says otherwise (`User:ANONYMOUS`, a client
    /// certificate's subject, the in-process listener's `User:sluice-internal`).
    pub(crate) fn new(
        broker: &Broker,
        sasl: bool,
        internal: bool,
        principal: &str,
        peer: SocketAddr,
    ) -> Session {
        let within = Duration::from_millis(broker.config.request_timeout_ms);
        Session {
            sasl,
            internal,
            remote_delegation: false,
            delegating: false,
            peer,
            authenticated: !sasl,
            mechanism: None,
            exchange: None,
            raw_tokens: false,
            authenticate_by: sasl.then(|| Instant::now() + within),
            expires_at: None,
            caller: Caller::new(principal, peer),
        }
    }

    /// Who the connection's requests come from (`User:ANONYMOUS` until it authenticates).
    /// Takes `DELEGATE_MECHANISM` besides the listener's mechanisms: on a SASL listener over
    /// TLS (the secret never crosses a network in clear), when the broker's delegation secret
    /// is the cluster's (`Authentication::delegation_cluster_wide`).
    pub(crate) fn offer_remote_delegation(&mut self) {
        self.remote_delegation = self.sasl;
    }

    pub(crate) fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The largest frame the connection may send now.
    pub(crate) fn frame_bytes_max(&self, configured: u32) -> u32 {
        if self.authenticated {
            configured
        } else {
            configured.min(SASL_RECEIVE_BYTES_MAX as u32)
        }
    }

    /// When the connection is closed unless it has authenticated by then.
    pub(crate) fn authenticate_by(&self) -> Option<Instant> {
        self.authenticate_by
    }

    pub(crate) fn admit(&mut self, broker: &Arc<Broker>, frame: Bytes) -> Admit {
        if self.raw_tokens {
            return self.raw_token(broker, frame);
        }
        let Some((key, _, _)) = peek_header(&frame) else {
            return Admit::Dispatch(frame); // dispatch refuses it
        };
        if key == ApiKey::SaslHandshake as i16 {
            return self.handshake(broker, frame);
        }
        if key == ApiKey::SaslAuthenticate as i16 {
            return self.authenticate(broker, frame);
        }
        if key == ApiKey::ApiVersions as i16 {
            return Admit::Dispatch(frame);
        }
        if !self.authenticated {
            tracing::info!(peer = %self.peer, api = key, "request before SASL authentication; closing");
            return Admit::Close("sasl_unauthenticated_request");
        }
        if self.expires_at.is_some_and(|at| Instant::now() >= at) {
            tracing::info!(peer = %self.peer, "SASL session expired (connections_max_reauth_ms); closing");
            return Admit::Close("sasl_session_expired");
        }
        Admit::Dispatch(frame)
    }

    fn handshake(&mut self, broker: &Arc<Broker>, frame: Bytes) -> Admit {
        let Some((request, version, correlation_id)) = decode::<SaslHandshakeRequest>(frame) else {
            return Admit::Close("malformed");
        };
        let auth = &broker.authentication;
        if self.internal {
            return self.delegation_handshake(broker, &request, version, correlation_id);
        }
        let offered = auth
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let answer = |error: Option<ResponseError>| {
            let response = SaslHandshakeResponse::default()
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_mechanisms(offered);
            respond(
                broker,
                ApiKey::SaslHandshake,
                version,
                correlation_id,
                response,
            )
        };
        if !self.sasl {
            return Admit::Answer(answer(Some(ResponseError::IllegalSaslState)));
        }
        let reauthenticating = self.authenticated;
        let refused = self.exchange.is_some()
            || self.raw_tokens
            || (reauthenticating && (auth.reauth_ms == 0 || version == 0));
        if refused {
            return Admit::AnswerAndClose(answer(Some(ResponseError::IllegalSaslState)));
        }
        let wanted = request.mechanism.as_str();
        if wanted == DELEGATE_MECHANISM && self.remote_delegation && !reauthenticating {
            self.delegating = version >= 1;
            let error = (version < 1).then_some(ResponseError::UnsupportedSaslMechanism);
            return Admit::Answer(answer(error));
        }
        let chosen = Mechanism::parse(wanted).filter(|m| auth.mechanisms.contains(m));
        match chosen {
            None => {
                self.audit_failure(broker, wanted, None, "mechanism not offered");
                Admit::AnswerAndClose(answer(Some(ResponseError::UnsupportedSaslMechanism)))
            }
            Some(m) if reauthenticating && self.mechanism != Some(m) => {
                self.audit_failure(
                    broker,
                    wanted,
                    None,
                    "re-authentication with another mechanism",
                );
                Admit::AnswerAndClose(answer(Some(ResponseError::IllegalSaslState)))
            }
            Some(m) => {
                self.exchange = Some(auth.exchange(m));
                self.raw_tokens = version == 0;
                Admit::Answer(answer(None))
            }
        }
    }

    fn authenticate(&mut self, broker: &Arc<Broker>, frame: Bytes) -> Admit {
        let Some((request, version, correlation_id)) = decode::<SaslAuthenticateRequest>(frame)
        else {
            return Admit::Close("malformed");
        };
        let reply = |error: Option<(ResponseError, String)>, token: Vec<u8>, lifetime_ms: i64| {
            let response = SaslAuthenticateResponse::default()
                .with_error_code(error.as_ref().map_or(0, |(e, _)| e.code()))
                .with_error_message(error.map(|(_, m)| StrBytes::from_string(m)))
                .with_auth_bytes(Bytes::from(token))
                .with_session_lifetime_ms(lifetime_ms);
            respond(
                broker,
                ApiKey::SaslAuthenticate,
                version,
                correlation_id,
                response,
            )
        };
        if self.delegating {
            self.delegating = false;
            return match broker.authentication.delegated(&request.auth_bytes) {
                Some(principal) => {
                    self.caller = Caller::new(&principal, self.peer);
                    self.authenticated = true;
                    self.authenticate_by = None;
                    Admit::Answer(reply(None, Vec::new(), 0))
                }
                None => {
                    self.audit_failure(broker, DELEGATE_MECHANISM, None, "bad delegation");
                    let error = (
                        ResponseError::SaslAuthenticationFailed,
                        "Authentication failed".to_string(),
                    );
                    Admit::AnswerAndClose(delayed(reply(Some(error), Vec::new(), 0)))
                }
            };
        }
        if self.exchange.is_none() || self.raw_tokens {
            let error = (
                ResponseError::IllegalSaslState,
                "SaslAuthenticate without a SaslHandshake (v1) before it".to_string(),
            );
            let answer = reply(Some(error), Vec::new(), 0);
            return if self.sasl {
                Admit::AnswerAndClose(answer)
            } else {
                Admit::Answer(answer)
            };
        }
        let mechanism = self.exchange.as_ref().map(Exchange::mechanism);
        match self.step(broker, &request.auth_bytes) {
            Stepped::Challenge(token) => Admit::Answer(reply(None, token, 0)),
            Stepped::Done { token, lifetime_ms } => {
                let lifetime_ms = i64::try_from(lifetime_ms).unwrap_or(i64::MAX);
                Admit::Answer(reply(None, token, lifetime_ms))
            }
            Stepped::Failed => {
                let message = format!(
                    "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                    mechanism.map_or("", Mechanism::name)
                );
                let error = (ResponseError::SaslAuthenticationFailed, message);
                Admit::AnswerAndClose(delayed(reply(Some(error), Vec::new(), 0)))
            }
        }
    }

    /// SaslHandshake on the in-process listener: only `DELEGATE_MECHANISM` (v1), which the
    /// next SaslAuthenticate completes.
    fn delegation_handshake(
        &mut self,
        broker: &Arc<Broker>,
        request: &SaslHandshakeRequest,
        version: i16,
        correlation_id: i32,
    ) -> Admit {
        let ok = version >= 1 && request.mechanism.as_str() == DELEGATE_MECHANISM;
        self.delegating = ok;
        let error = if ok {
            0
        } else {
            ResponseError::IllegalSaslState.code()
        };
        let response = SaslHandshakeResponse::default()
            .with_error_code(error)
            .with_mechanisms(vec![StrBytes::from_static_str(DELEGATE_MECHANISM)]);
        Admit::Answer(respond(
            broker,
            ApiKey::SaslHandshake,
            version,
            correlation_id,
            response,
        ))
    }

    /// A token of a v0 exchange: the answer is a raw length-prefixed token too. A failure
    /// closes the connection without one (the v0 framing has no way to say why).
    fn raw_token(&mut self, broker: &Arc<Broker>, token: Bytes) -> Admit {
        let framed = |token: Vec<u8>| {
            let mut frame = BytesMut::with_capacity(4 + token.len());
            frame.put_u32(token.len() as u32);
            frame.put_slice(&token);
            ready(Reply::Frame(frame.freeze()))
        };
        match self.step(broker, &token) {
            Stepped::Challenge(token) | Stepped::Done { token, .. } => Admit::Answer(framed(token)),
            Stepped::Failed => Admit::AnswerAndClose(delayed(ready(Reply::Nothing))),
        }
    }

    /// Feeds the exchange the client's token.
    fn step(&mut self, broker: &Broker, token: &[u8]) -> Stepped {
        let auth = &broker.authentication;
        let Some(exchange) = self.exchange.as_mut() else {
            return Stepped::Failed;
        };
        let mechanism = exchange.mechanism();
        if !auth.may_try(self.peer.ip()) {
            let user = exchange.claimed_user().map(str::to_string);
            self.fail(
                broker,
                mechanism,
                user,
                "too many failed authentications from this address",
            );
            return Stepped::Failed;
        }
        let image = broker.published_image();
        let credentials = ImageCredentials::new(&image, auth);
        match exchange.step(token, &credentials, unix_now_ms()) {
            Ok(Step::Challenge(token)) => Stepped::Challenge(token),
            Ok(Step::Done {
                user,
                token,
                expires_at_unix_ms,
            }) => {
                let credential_ms = expires_at_unix_ms.map(|at| at.saturating_sub(unix_now_ms()));
                self.authenticated(broker, mechanism, user, token, credential_ms)
            }
            Err(e) => {
                let user = exchange.claimed_user().map(str::to_string);
                self.fail(broker, mechanism, user, &e.to_string());
                Stepped::Failed
            }
        }
    }

    fn authenticated(
        &mut self,
        broker: &Broker,
        mechanism: Mechanism,
        user: String,
        token: Vec<u8>,
        credential_ms: Option<u64>,
    ) -> Stepped {
        let principal = format!("User:{user}");
        let reauthenticated = self.authenticated;
        if reauthenticated && *self.caller.principal != *principal {
            self.fail(
                broker,
                mechanism,
                Some(user),
                "re-authentication as another principal",
            );
            return Stepped::Failed;
        }
        let lifetime_ms = session_lifetime_ms(broker.authentication.reauth_ms, credential_ms);
        tracing::debug!(peer = %self.peer, %principal, mechanism = mechanism.name(), reauthenticated, "authenticated");
        broker.metrics.authentication(
            mechanism.name(),
            if reauthenticated {
                "reauthenticated"
            } else {
                "succeeded"
            },
        );
        self.exchange = None;
        self.raw_tokens = false;
        self.caller = Caller::new(&principal, self.peer);
        self.authenticated = true;
        self.mechanism = Some(mechanism);
        self.authenticate_by = None;
        self.expires_at =
            (lifetime_ms > 0).then(|| Instant::now() + Duration::from_millis(lifetime_ms));
        Stepped::Done { token, lifetime_ms }
    }

    fn fail(&mut self, broker: &Broker, mechanism: Mechanism, user: Option<String>, reason: &str) {
        broker.authentication.failed(self.peer.ip());
        self.exchange = None;
        self.raw_tokens = false;
        self.audit_failure(broker, mechanism.name(), user, reason);
    }

    fn audit_failure(&self, broker: &Broker, mechanism: &str, user: Option<String>, reason: &str) {
        let principal = user.map_or_else(|| ANONYMOUS.to_string(), |u| format!("User:{u}"));
        tracing::warn!(
            target: "sluice::audit",
            event = "authentication_failed",
            %principal,
            source = %self.peer,
            mechanism,
            reason,
            "authentication failed"
        );
        let known = Mechanism::parse(mechanism).map_or("unknown", Mechanism::name);
        broker.metrics.authentication(known, "failed");
    }
}

/// How long an authentication holds (KIP-368): `connections.max.reauth.ms`, or less when the
/// credential runs out sooner (an OAUTHBEARER token's `exp`), as Kafka's
/// `SaslServerAuthenticator` takes it; 0 (no re-authentication configured): for the
/// connection's life, whatever the credential's expiry.
fn session_lifetime_ms(reauth_ms: u64, credential_ms: Option<u64>) -> u64 {
    if reauth_ms == 0 {
        return 0;
    }
    credential_ms.map_or(reauth_ms, |c| reauth_ms.min(c.max(1)))
}

/// The wall clock in Unix milliseconds, as the SASL crate takes it.
pub(super) fn unix_now_ms() -> u64 {
    u64::try_from(crate::now_ms()).unwrap_or(0)
}

/// A SASL request's body, version and correlation id; `None` when it does not decode.
fn decode<T: kafka_protocol::protocol::Decodable>(frame: Bytes) -> Option<(T, i16, i32)> {
    let request = decode_request(frame).ok()?;
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let body = decode_body::<T>(request.body, version).ok()?;
    Some((body, version, correlation_id))
}

fn respond<T: Encodable + crate::metrics::ResponseErrors>(
    broker: &Broker,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: T,
) -> Pending {
    broker.metrics.request_done(api, Duration::ZERO);
    broker.metrics.response_errors(api, &response);
    match encode_response(api, version, correlation_id, &response) {
        Ok(frame) => ready(Reply::Frame(frame)),
        Err(e) => {
            tracing::error!(?api, version, error = %e, "cannot encode a SASL response; closing");
            ready(Reply::Close)
        }
    }
}

/// `reply`, after `SASL_FAILURE_DELAY_MS`: a guesser gets no answer sooner.
fn delayed(reply: Pending) -> Pending {
    Box::pin(async move {
        tokio::time::sleep(Duration::from_millis(SASL_FAILURE_DELAY_MS)).await;
        reply.await
    })
}
