//! Requests a browser could be tricked into sending: refused before any route runs.
//!
//! - **Cross-origin writes.** A page on another origin can POST to the API (a `text/plain`
//!   body needs no CORS preflight). Unless `http_cors_origins` approves that origin, a request
//!   that changes something (any method but GET, HEAD and OPTIONS) carrying an `Origin` that
//!   is not the API's own is refused with 403.
//! - **DNS rebinding.** A name the attacker controls can be made to resolve to 127.0.0.1, and
//!   the browser then treats the API as that name's. On a loopback listener the `Host` must
//!   therefore be `localhost` or an IP address; any other name is refused with 403. A listener
//!   on another address serves whatever names point at it.
//!
//! And what need not be read to be refused: a body whose `Content-Length` is over
//! `HTTP_BODY_BYTES_MAX` gets 413 before a byte of it is read (one without a length is cut off
//! at the limit as it streams, by the routes' `DefaultBodyLimit`).

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_types::limits::HTTP_BODY_BYTES_MAX;
use std::net::{IpAddr, SocketAddr};

/// Where the API listens, which decides what `Host` it accepts, and the origins CORS
/// approves.
#[derive(Clone)]
pub(crate) struct Guard {
    pub listener: SocketAddr,
    pub cors: crate::CorsOrigins,
}

pub(crate) async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if guard.listener.ip().is_loopback() && !loopback_name(host) {
        return forbidden(format!(
            "Host {host:?} is not a name of this loopback listener (use localhost or an IP address)"
        ));
    }
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = length.filter(|&n| n > HTTP_BODY_BYTES_MAX as u64) {
        return ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error_code: "REQUEST_TOO_LARGE".into(),
            message: format!("a body of {length} bytes; at most {HTTP_BODY_BYTES_MAX} are taken"),
        }
        .into_response();
    }
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if writes && let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        if !same_origin(origin, host) && !approved(&guard.cors, origin) {
            return forbidden(format!(
                "cross-origin request from {origin} refused: http_cors_origins does not approve it"
            ));
        }
    }
    next.run(request).await
}

fn forbidden(message: String) -> Response {
    ApiError {
        status: StatusCode::FORBIDDEN,
        error_code: "FORBIDDEN".into(),
        message,
    }
    .into_response()
}

/// The host part of a `Host` value (`name`, `name:port`, `[v6]:port`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn loopback_name(host: &str) -> bool {
    let name = host_name(host);
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// `origin` is one `http_cors_origins` approves.
fn approved(cors: &crate::CorsOrigins, origin: &str) -> bool {
    match cors {
        crate::CorsOrigins::Off => false,
        crate::CorsOrigins::Any => true,
        crate::CorsOrigins::List(list) => list.iter().any(|o| o.as_bytes() == origin.as_bytes()),
    }
}

/// `origin` (`scheme://host[:port]`) names the same host and port as the `Host` header.
fn same_origin(origin: &str, host: &str) -> bool {
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins() {
        assert!(loopback_name("localhost:8080"));
        assert!(loopback_name("127.0.0.1:8080"));
        assert!(loopback_name("[::1]:8080"));
        assert!(!loopback_name("rebind.example.com:8080"));
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:8080"));
        assert!(!same_origin("null", "127.0.0.1:8080"));
    }
}
