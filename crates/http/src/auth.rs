//! Who an HTTP request comes from (issue 15, docs/security.md, "The HTTP API"): with
//! `http_auth` naming `basic`, `bearer` or `mtls`, every route but `/healthz` and `/readyz`
//! needs a principal, taken from HTTP Basic (checked against the SCRAM credentials, as PLAIN
//! is), a bearer token (a JWT, checked as OAUTHBEARER's), or the client certificate of a TLS
//! connection. A request without one is answered 401. The request's Kafka connections then act
//! as that principal on the broker's in-process listener (`caller_security`), so the broker's
//! ACLs decide what it may do, as for any Kafka client. The SQL and view routes, which act on
//! cluster-wide objects, need a principal allowed ALTER on the cluster.
//!
//! Owns: reading the credentials of a request, the cache of checked passwords, and the
//! principal in force while a request is handled (`CALLER`). Not: the checks themselves (the
//! broker's, through `CallerChecks`).

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sluice_client::security::{Delegation, Security};
use sluice_types::limits::HTTP_AUTH_CACHE_ENTRIES_MAX;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a checked password is believed without checking it again.
const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(60);

/// The broker's checks of a caller's credentials.
pub trait CallerChecks: Send + Sync {
    /// Whether `password` is `user`'s.
    fn password_is(&self, user: &str, password: &str) -> bool;
    /// A value that changes whenever `user`'s credentials do (cheap: asked on every request
    /// with a cached password).
    fn credentials_stamp(&self, user: &str) -> u64;
    /// The subject of a valid bearer token.
    fn token_subject(&self, token: &str) -> Option<String>;
    /// The principal of a client certificate (DER).
    fn certificate_principal(&self, der: &[u8]) -> Option<String>;
    /// Whether `principal` may ALTER the cluster.
    fn may_alter_cluster(&self, principal: &str) -> bool;
}

/// Which credentials the HTTP API takes, and how its connections act for a caller.
#[derive(Clone)]
pub struct HttpAuth {
    pub basic: bool,
    pub bearer: bool,
    pub certificate: bool,
    pub checks: Arc<dyn CallerChecks>,
    /// The broker's delegation secret (`CallerChecks` of the broker crate).
    pub delegation_secret: String,
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAuth")
            .field("basic", &self.basic)
            .field("bearer", &self.bearer)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

/// The client certificate of the TLS connection a request came on (DER), put there by the
/// server loop.
#[derive(Debug, Clone)]
pub(crate) struct PeerCertificate(pub Vec<u8>);

tokio::task_local! {
    /// The principal a request is handled for; absent without `http_auth`.
    static CALLER: Option<String>;
}

/// The security of a Kafka connection made for the request being handled: acting as its
/// principal (on the in-process listener, and on the other brokers' inter-broker listener
/// with its TLS, where `base` reaches them so), or, without `http_auth`, `base`.
pub(crate) fn caller_security(auth: Option<&HttpAuth>, base: &Security) -> Security {
    let principal = CALLER.try_with(Clone::clone).ok().flatten();
    let (Some(auth), Some(principal)) = (auth, principal) else {
        return base.clone();
    };
    let delegation = Delegation {
        secret: auth.delegation_secret.clone(),
        principal,
    };
    let elsewhere = base.elsewhere.as_ref().map(|remote| {
        Arc::new(Security {
            tls: remote.tls.clone(),
            delegation: Some(delegation.clone()),
            ..Security::default()
        })
    });
    Security {
        delegation: Some(delegation),
        elsewhere,
        ..Security::default()
    }
}

/// The principal of the request being handled, if any.
pub(crate) fn current_caller() -> Option<String> {
    CALLER.try_with(Clone::clone).ok().flatten()
}

/// Checked passwords, so that a client sending Basic credentials with every request does not
/// pay a SCRAM derivation each time. An entry holds until it expires or the user's
/// credentials change (a new password, a deleted user), whichever comes first.
#[derive(Default)]
pub(crate) struct PasswordCache(Mutex<HashMap<(String, String), (Instant, u64)>>);

impl PasswordCache {
    fn checked(&self, auth: &HttpAuth, user: &str, password: &str) -> bool {
        let key = (user.to_string(), password.to_string());
        let now = Instant::now();
        let stamp = auth.checks.credentials_stamp(user);
        {
            let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if cache
                .get(&key)
                .is_some_and(|(until, was)| *until > now && *was == stamp)
            {
                return true;
            }
        }
        if !auth.checks.password_is(user, password) {
            return false;
        }
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= HTTP_AUTH_CACHE_ENTRIES_MAX {
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= HTTP_AUTH_CACHE_ENTRIES_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (now + PASSWORD_CACHE_TTL, stamp));
        true
    }
}

/// What the middleware needs.
#[derive(Clone)]
pub(crate) struct Authenticator {
    pub auth: Option<HttpAuth>,
    pub passwords: Arc<PasswordCache>,
}

/// Routes a probe must reach without credentials.
fn open_route(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Routes that act on cluster-wide objects (tables and views).
fn cluster_route(path: &str) -> bool {
    path == "/v1/sql" || path == "/v1/views" || path.starts_with("/v1/views/")
}

pub(crate) async fn authenticate(
    State(authenticator): State<Authenticator>,
    request: Request,
    next: Next,
) -> Response {
    let Some(auth) = &authenticator.auth else {
        return next.run(request).await;
    };
    let path = request.uri().path().to_string();
    if open_route(&path) {
        return next.run(request).await;
    }
    let Some(principal) = principal_of(auth, &authenticator.passwords, &request) else {
        return unauthorized(auth);
    };
    if cluster_route(&path) && !auth.checks.may_alter_cluster(&principal) {
        return ApiError {
            status: StatusCode::FORBIDDEN,
            error_code: "CLUSTER_AUTHORIZATION_FAILED".into(),
            message: format!("{principal} may not ALTER the cluster, which tables and views need"),
        }
        .into_response();
    }
    CALLER.scope(Some(principal), next.run(request)).await
}

/// The request's principal: its client certificate's, else its Authorization header's.
fn principal_of(auth: &HttpAuth, passwords: &PasswordCache, request: &Request) -> Option<String> {
    let from_certificate = || {
        let certificate = request.extensions().get::<PeerCertificate>()?;
        auth.checks.certificate_principal(&certificate.0)
    };
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let from_header = || {
        let (scheme, credentials) = header?.split_once(' ')?;
        let credentials = credentials.trim();
        if auth.basic && scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (user, password) = decoded.split_once(':')?;
            return (!user.is_empty() && passwords.checked(auth, user, password))
                .then(|| format!("User:{user}"));
        }
        if auth.bearer && scheme.eq_ignore_ascii_case("bearer") {
            return auth
                .checks
                .token_subject(credentials)
                .map(|s| format!("User:{s}"));
        }
        None
    };
    match header {
        Some(_) => from_header(),
        None if auth.certificate => from_certificate(),
        None => None,
    }
}

fn unauthorized(auth: &HttpAuth) -> Response {
    let mut response = ApiError {
        status: StatusCode::UNAUTHORIZED,
        error_code: "SASL_AUTHENTICATION_FAILED".into(),
        message: "authentication required: HTTP Basic, a bearer token or a client certificate, as the server takes them".into(),
    }
    .into_response();
    let mut challenges = Vec::new();
    if auth.basic {
        challenges.push(r#"Basic realm="sluice""#);
    }
    if auth.bearer {
        challenges.push(r#"Bearer realm="sluice""#);
    }
    if let Ok(value) = HeaderValue::from_str(&challenges.join(", "))
        && !challenges.is_empty()
    {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
