//! The web console (issue 17, docs/console.md): pages for people at `/ui` on the HTTP
//! listener, rendered on the server (askama templates compiled into the binary), with a few
//! lines of plain script for what a page does by itself (refreshing a group's lag, the live
//! tail). Its stylesheet and script are embedded too: nothing is fetched from elsewhere, so it
//! works offline, and its Content-Security-Policy allows nothing but this origin.
//!
//! Every page and every action calls the HTTP API's own handlers (`crate::topics`,
//! `crate::groups`, `crate::records`, `crate::cluster`, `crate::users`, `crate::acls`) and
//! renders their JSON: the console has no path of its own to the broker, and it is
//! authenticated and authorized as the API is (the same middleware, the caller's ACLs). Forms post to `/ui/...` and are answered with
//! a redirect (or the page again, with the error), so they work without script; the guard's
//! same-origin rule keeps other sites from posting them.
//!
//! - `overview`: the cluster, its brokers, this broker's disk and throughput with an hour's
//!   chart;
//! - `topics`: the list with sizes and rates, create, a topic's partitions and configs, edit a
//!   config, add partitions, delete with confirmation;
//! - `messages`: the message browser (a partition from an offset, a time or the last N; by
//!   key) and the produce form;
//! - `groups`: the list, a group's members, assignments and lag with its chart, and resetting
//!   offsets with a dry run;
//! - `users`: SCRAM users, create or set a password, delete (`crate::users`);
//! - `acls`: the ACLs a filter selects, add one, remove one (`crate::acls`);
//! - `history` (the metrics kept for the charts), `chart` (SVG), `view` (units, values).
//!
//! Not owned here: what the pages show (the API's handlers), authentication (`auth`).

mod acls;
mod chart;
mod groups;
pub(crate) mod history;
mod messages;
mod overview;
mod topics;
mod users;
mod view;

use crate::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::sync::Arc;

const STYLESHEET: &str = include_str!("../../assets/console.css");
const SCRIPT: &str = include_str!("../../assets/console.js");

/// Nothing but this origin, no inline script, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(overview::page))
        .route("/ui/", get(overview::page))
        .route("/ui/topics", get(topics::list).post(topics::create))
        .route("/ui/topics/{topic}", get(topics::page))
        .route("/ui/topics/{topic}/configs", post(topics::alter_config))
        .route(
            "/ui/topics/{topic}/partitions",
            post(topics::add_partitions),
        )
        .route("/ui/topics/{topic}/delete", post(topics::delete))
        .route("/ui/topics/{topic}/messages", get(messages::browse))
        .route(
            "/ui/topics/{topic}/produce",
            get(messages::produce_form).post(messages::produce),
        )
        .route("/ui/groups", get(groups::list))
        .route("/ui/groups/{group}", get(groups::page))
        .route("/ui/groups/{group}/reset-offsets", post(groups::reset))
        .route("/ui/users", get(users::list).post(users::set_password))
        .route("/ui/users/{user}/delete", post(users::delete))
        .route("/ui/acls", get(acls::list).post(acls::add))
        .route("/ui/acls/remove", post(acls::remove))
        .route("/ui/assets/console.css", get(stylesheet))
        .route("/ui/assets/console.js", get(script))
}

/// What every page's frame shows: its title, which tab is current, and an error or a notice.
pub(crate) struct Frame {
    pub title: String,
    pub nav: &'static str,
    pub error: Option<String>,
    pub notice: Option<String>,
}

impl Frame {
    pub(crate) fn new(title: impl Into<String>, nav: &'static str) -> Frame {
        Frame {
            title: title.into(),
            nav,
            error: None,
            notice: None,
        }
    }

    /// Shows what the API answered: its Kafka error name and message.
    pub(crate) fn failed(&mut self, error: &ApiError) {
        self.error = Some(format!("{}: {}", error.error_code, error.message));
    }
}

/// A rendered page, with the console's headers; `status` is the API's when the page shows
/// its refusal (a 403 stays a 403).
pub(crate) fn html(status: StatusCode, page: &impl askama::Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// After a form did what it asked: the page to show next (POST, then GET).
pub(crate) fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// `text` as one segment of a URL path or a query value.
pub(crate) fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_parts_are_escaped() {
        assert_eq!(super::url_part("orders-eu"), "orders-eu");
        assert_eq!(super::url_part("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(super::url_part("ü"), "%C3%BC");
    }
}
