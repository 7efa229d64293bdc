//! `sluice-http`: the HTTP/JSON API that `sluice serve` offers next to the Kafka listener, for
//! services with no Kafka client.
//!
//! It is a gateway, not a second broker: every request becomes Kafka requests to the broker
//! through `sluice-client` (over loopback), so produce, fetch, durability and errors behave
//! exactly as for any Kafka client, and the gateway could front any Kafka cluster.
//!
//! Owns: routes, JSON shapes and their OpenAPI description (`api`), the HTTP error format and
//! status codes (`error`), the pool of broker connections (`pool`), SSE streams (`stream`),
//! group members held for polling clients (`members`), share-group members for the queue over
//! HTTP (`share_queue`), the web console at `/ui` (`console`: pages rendered from the
//! handlers' own answers). Not: any storage or broker internals.
//!
//! Routes (described at `GET /openapi.json`): `GET /healthz`, `GET /readyz`, `GET /metrics`
//! (the broker's, rendered by a function the binary hands in, so this crate stays a client);
//! `GET /v1/cluster`; `GET|POST /v1/topics`, `GET|DELETE /v1/topics/{topic}`, `PATCH /v1/topics/{topic}/configs`,
//! `POST /v1/topics/{topic}/partitions`; `POST /v1/topics/{topic}/records`;
//! `GET|DELETE /v1/topics/{topic}/partitions/{partition}/records`;
//! `GET /v1/topics/{topic}/stream` (Server-Sent Events); `GET /v1/groups`,
//! `GET|DELETE /v1/groups/{group}`, `POST /v1/groups/{group}/reset-offsets`; group members
//! under `/v1/groups/{group}/members`; share-group members (the queue) under
//! `/v1/share-groups/{group}/members`; SCRAM users (`GET /v1/users`,
//! `PUT|DELETE /v1/users/{user}`) and ACLs (`GET|POST|DELETE /v1/acls`). Every error, 404
//! and 405 included, is a JSON body.

mod acls;
mod api;
mod auth;
mod cluster;
mod console;
mod error;
mod forward;
mod groups;
mod guard;
mod members;
pub(crate) mod metrics;
mod pool;
mod records;
mod serve;
mod share_queue;
mod stream;
mod topics;
mod users;
mod views;

pub use auth::{CallerChecks, HttpAuth};
use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post, put};
use bytes::Bytes;
use error::{ApiError, ApiResult};
pub use metrics::join as join_metrics;
use pool::ClientPool;
use serde_json::{Value, json};
use sluice_types::limits::{HTTP_BODY_BYTES_MAX, HTTP_STREAMS_MAX};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
pub use views::{BoxFuture, ChangeStream, Positions as ViewPositions, ViewsFailure, ViewsService};

/// How long shutdown waits for HTTP requests in progress (an SSE stream never ends by
/// itself).
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) struct AppState {
    pool: ClientPool,
    /// Open Server-Sent Events streams, at most `HTTP_STREAMS_MAX`.
    streams: Arc<tokio::sync::Semaphore>,
    /// Renders the broker's metrics (OpenMetrics text).
    metrics: MetricsRenderer,
    /// The metrics of the last hour, for the console's charts.
    history: Arc<console::history::History>,
    /// Group members held for polling HTTP clients.
    members: members::Registry<members::HttpMember>,
    /// Share-group members held for polling HTTP clients (the queue).
    share_members: members::Registry<share_queue::ShareMember>,
    /// Group streams that take acknowledgements (`ack=explicit`).
    stream_acks: stream::AckRoutes,
    /// HTTP requests by route and status.
    http_metrics: Arc<metrics::HttpMetrics>,
    /// The view engine, when views run in this process.
    views: Option<Arc<dyn views::ViewsService>>,
}

/// What `GET /metrics` serves: the broker's metrics as OpenMetrics text.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Where a new connection's TLS handshake takes its configuration: the newest one, so
/// certificates read again (SIGHUP, a changed file) serve the next connections.
#[derive(Clone)]
pub struct TlsConfigs(pub Arc<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>);

impl TlsConfigs {
    /// Always `config`.
    pub fn fixed(config: Arc<rustls::ServerConfig>) -> TlsConfigs {
        TlsConfigs(Arc::new(move || config.clone()))
    }

    pub(crate) fn current(&self) -> Arc<rustls::ServerConfig> {
        (self.0)()
    }
}

impl std::fmt::Debug for TlsConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfigs")
    }
}

/// How the HTTP API serves, beyond its address.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// A connection whose next request's headers do not arrive within this (idle keep-alive
    /// connections included) is closed.
    pub header_read_timeout: std::time::Duration,
    /// Browser origins allowed by CORS; empty: no CORS headers at all.
    pub cors_origins: CorsOrigins,
    /// The view engine behind `/v1/sql` and `/v1/views` (`None`: those routes answer 404).
    pub views: Option<Arc<dyn views::ViewsService>>,
    /// Who may call, and how (`None`: anyone who reaches the address, as the in-process
    /// listener's own principal).
    pub auth: Option<HttpAuth>,
    /// TLS for every connection (`http_tls`): each handshake takes what this gives then, so
    /// certificates read again serve the next connections.
    pub tls: Option<TlsConfigs>,
    /// How the gateway's Kafka connections reach the brokers when not acting for a caller:
    /// in `sluice serve`, plain on the in-process listener and with the inter-broker
    /// listener's TLS and login elsewhere (`Security::elsewhere`); in a view worker, as its
    /// `--tls-*` and SASL flags say.
    pub brokers: sluice_client::security::Security,
}

/// Which browser origins may call the API (CORS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers: browsers keep other origins' pages out (the default).
    #[default]
    Off,
    Any,
    List(Vec<axum::http::HeaderValue>),
}

/// Parses `http_cors_origins`: empty (off), `*` (any), or comma-separated origins
/// (`scheme://host[:port]`, as browsers send them: `https://console.example.com`).
pub fn parse_cors_origins(text: &str) -> Result<CorsOrigins, String> {
    let origins: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(CorsOrigins::Off);
    }
    if origins == ["*"] {
        return Ok(CorsOrigins::Any);
    }
    let mut list = Vec::with_capacity(origins.len());
    for origin in origins {
        let origin = origin.trim_end_matches('/');
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let refuse =
            || format!("http_cors_origins: {origin:?} is not an origin (https://host[:port]) or *");
        match host {
            Some(host) if !host.is_empty() && !host.contains(['/', ' ', '*']) => {}
            _ => return Err(refuse()),
        }
        list.push(axum::http::HeaderValue::from_str(origin).map_err(|_| refuse())?);
    }
    Ok(CorsOrigins::List(list))
}

/// The running HTTP API.
pub struct HttpApi {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HttpApi {
    /// Binds `listen` and serves, sending Kafka requests to `bootstrap`. A connection whose
    /// next request's headers do not arrive within `header_read_timeout` (idle keep-alive
    /// connections included) is closed.
    pub async fn start(
        listen: SocketAddr,
        bootstrap: String,
        metrics: MetricsRenderer,
        options: HttpOptions,
    ) -> std::io::Result<HttpApi> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let state = Arc::new(AppState {
            pool: ClientPool::new(bootstrap, options.auth.clone(), options.brokers.clone()),
            streams: Arc::new(tokio::sync::Semaphore::new(HTTP_STREAMS_MAX)),
            metrics,
            history: Arc::default(),
            members: members::Registry::default(),
            share_members: members::Registry::default(),
            stream_acks: stream::AckRoutes::default(),
            http_metrics: Arc::new(metrics::HttpMetrics::new()),
            views: options.views.clone(),
        });
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let authenticator = auth::Authenticator {
            auth: options.auth.clone(),
            passwords: Arc::default(),
        };
        let app = router(state.clone())
            .layer(axum::middleware::from_fn_with_state(
                authenticator,
                auth::authenticate,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.http_metrics.clone(),
                metrics::track,
            ))
            .layer(cors_layer(&options.cors_origins))
            // Compresses what the client accepts (gzip, zstd); tower-http's default predicate
            // leaves Server-Sent Events and small bodies alone.
            .layer(tower_http::compression::CompressionLayer::new())
            .layer(axum::middleware::from_fn_with_state(
                guard::Guard {
                    listener: local_addr,
                    cors: options.cors_origins.clone(),
                },
                guard::check,
            ));
        let sampler = tokio::spawn(console::history::sample(state.clone()));
        let sweeper = tokio::spawn(members::sweep(state));
        let task = tokio::spawn(async move {
            serve::serve(
                listener,
                app,
                options.header_read_timeout,
                options.tls,
                stop,
            )
            .await;
            sweeper.abort();
            sampler.abort();
        });
        tracing::info!(%local_addr, "HTTP API listening");
        Ok(HttpApi {
            local_addr,
            shutdown,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops taking requests and waits for those in progress, at most `SHUTDOWN_DRAIN`:
    /// streams and long-polls that outlast it are cut.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if tokio::time::timeout(SHUTDOWN_DRAIN, &mut self.task)
            .await
            .is_err()
        {
            tracing::info!("closing HTTP streams still open");
            self.task.abort();
            let _ = self.task.await;
        }
    }
}

/// The CORS layer for `origins`: none at all when off (no CORS headers are sent, so browsers
/// keep other origins out), else the listed origins (or any) with every method the API serves.
fn cors_layer(origins: &CorsOrigins) -> tower_http::cors::CorsLayer {
    use axum::http::{Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = match origins {
        CorsOrigins::Off => return CorsLayer::new(),
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.clone()),
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::AUTHORIZATION,
            header::HeaderName::from_static("last-event-id"),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/cluster", get(cluster::describe))
        .route("/v1/topics", get(topics::list).post(topics::create))
        .route(
            "/v1/topics/{topic}",
            get(topics::describe).delete(topics::delete),
        )
        .route("/v1/groups", get(groups::list))
        .route("/v1/users", get(users::list))
        .route(
            "/v1/users/{user}",
            put(users::set_password).delete(users::delete),
        )
        .route(
            "/v1/acls",
            get(acls::list).post(acls::add).delete(acls::remove),
        )
        .route("/v1/topics/{topic}/configs", patch(topics::alter_configs))
        .route(
            "/v1/topics/{topic}/partitions",
            post(topics::add_partitions),
        )
        .route(
            "/v1/groups/{group}",
            get(groups::describe).delete(groups::delete),
        )
        .route(
            "/v1/groups/{group}/reset-offsets",
            post(groups::reset_offsets),
        )
        .route("/v1/groups/{group}/members", post(members::join))
        .route(
            "/v1/groups/{group}/members/{member}",
            delete(members::leave),
        )
        .route(
            "/v1/groups/{group}/members/{member}/records",
            get(members::poll),
        )
        .route(
            "/v1/groups/{group}/members/{member}/commit",
            post(members::commit),
        )
        .route("/v1/share-groups/{group}/members", post(share_queue::join))
        .route(
            "/v1/share-groups/{group}/members/{member}",
            delete(share_queue::leave),
        )
        .route(
            "/v1/share-groups/{group}/members/{member}/records",
            get(share_queue::poll),
        )
        .route(
            "/v1/share-groups/{group}/members/{member}/acks",
            post(share_queue::acknowledge),
        )
        .route("/v1/topics/{topic}/records", post(records::produce))
        .route("/v1/topics/{topic}/stream", get(stream::stream))
        .route("/v1/groups/{group}/streams/{stream}/ack", post(stream::ack))
        .route(
            "/v1/topics/{topic}/partitions/{partition}/records",
            get(records::fetch).delete(records::delete_records),
        )
        .merge(views_router(state.clone()))
        .merge(console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(HTTP_BODY_BYTES_MAX))
        .with_state(state)
}

/// `/v1/sql` and `/v1/views...`, each request about a view kept by another node of a cluster
/// sent on to it (`forward`).
fn views_router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sql", post(views::sql))
        .route("/v1/views", get(views::list))
        .route(
            "/v1/views/{view}",
            get(views::describe).delete(views::drop_view),
        )
        .route("/v1/views/{view}/keys/{key}", get(views::row))
        .route("/v1/views/{view}/rows", get(views::rows))
        .route("/v1/views/{view}/changes", get(views::changes))
        .route("/v1/views/{view}/rebuild", post(views::rebuild))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            forward::route_views,
        ))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health", responses((status = 200, description = "the process is alive", body = crate::api::Status)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the broker answers the gateway.
///
/// Ready once the broker answers (it starts after storage recovery): a Metadata request goes
/// through, so a pooled connection to a broker that went away does not count.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health", responses((status = 200, description = "the broker answers", body = crate::api::Status), (status = 503, description = "the broker does not answer", body = crate::api::Status)))]
async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let answered = state
        .pool
        .with(async |client: &mut sluice_client::Client| {
            client.metadata(Some(&[]), false).await.map(|_| ())
        })
        .await;
    match answered {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "message": e.to_string()})),
        ),
    }
}

/// The broker's Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health", responses((status = 200, description = "Prometheus metrics", content_type = "application/openmetrics-text", body = String)))]
async fn metrics(State(state): State<Arc<AppState>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let render = state.metrics.clone();
    let http = state.http_metrics.clone();
    match tokio::task::spawn_blocking(move || metrics::join(&render(), &http.render())).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error_code: "METRICS_FAILED".into(),
            message: e.to_string(),
        }
        .into_response(),
    }
}

/// The OpenAPI description of every route, generated from the handlers.
async fn openapi() -> axum::response::Response {
    use axum::response::IntoResponse;
    use utoipa::OpenApi;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        api::ApiDoc::openapi().to_json().unwrap_or_default(),
    )
        .into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        error_code: "METHOD_NOT_ALLOWED".into(),
        message: format!(
            "{method} is not served on {}; /openapi.json lists each route's methods",
            uri.path()
        ),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API lives under /v1 (see docs/http-api.md)")
}

/// Parses a JSON body, turning every failure (too large, not JSON, wrong shape) into a 4xx.
pub(crate) fn body_json<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<T> {
    let bytes = body.map_err(|e| ApiError {
        status: e.status(),
        error_code: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "REQUEST_TOO_LARGE".into()
        } else {
            "INVALID_REQUEST".into()
        },
        message: e.body_text(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}
