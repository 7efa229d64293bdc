//! `sluice view worker`: the view engine apart from the broker. It keeps the definitions of the
//! catalog (`__sluice_views`) that `--brokers` hold, with its checkpoint in its own data
//! directory, and serves the HTTP API (SQL and the views' routes, and the topics' and groups'
//! routes as a gateway to `--brokers`) on its own listener, until SIGTERM or Ctrl-C.
//!
//! The engine is a Kafka client of the brokers either way, so a view kept here is the same as
//! one kept inside `sluice serve`: same output topics, groups and transactional ids. One
//! process keeps a cluster's views: run the brokers with `--views off`. (Two keeping the same
//! view fence each other's transactions; nothing is published twice, but neither gets far.)
//!
//! Owns: the worker's settings and life. Not: the engine (`sluice-view`), HTTP (`sluice-http`).

use crate::cli::Target;
use crate::views::ViewsAdapter;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// Where the worker keeps its checkpoint (`checkpoint.redb`).
    #[arg(
        long,
        env = "SLUICE_VIEW_WORKER_DATA_DIR",
        default_value = "sluice-view-worker"
    )]
    pub data_dir: PathBuf,
    /// The worker's HTTP API: `POST /v1/sql`, `/v1/views...`, `/metrics`, and the topics'
    /// routes as a gateway to --brokers.
    #[arg(
        long,
        env = "SLUICE_VIEW_WORKER_HTTP_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub http_listen: SocketAddr,
    /// How the HTTP API authenticates callers: none (the only one so far); an address other
    /// than loopback needs it said.
    #[arg(long, env = "SLUICE_VIEW_WORKER_HTTP_AUTH", default_value = "")]
    pub http_auth: String,
    /// How often each view publishes its changes, in ms.
    #[arg(long, env = "SLUICE_VIEWS_COMMIT_INTERVAL_MS", default_value_t = 100)]
    pub commit_interval_ms: u64,
    /// Log lines as text or json.
    #[arg(long, env = "SLUICE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// How long the HTTP API waits for a request's headers (as `sluice serve` does by default).
const HEADER_READ_TIMEOUT: Duration =
    Duration::from_millis(sluice_types::limits::REQUEST_ARRIVAL_MS_MAX_DEFAULT);

pub fn run(target: &Target, args: WorkerArgs) -> anyhow::Result<()> {
    crate::init_logging(&args.log_format);
    crate::settings::check_http_auth(args.http_listen, &args.http_auth)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-worker")
        .build()?;
    let bootstrap = target.addresses();
    let security = target.security()?;
    runtime.block_on(async move {
        let options = sluice_view::engine::EngineOptions {
            bootstrap: bootstrap.clone(),
            security: security.clone(),
            commit_interval: Duration::from_millis(args.commit_interval_ms.max(1)),
            faults: None,
        };
        let state = args.data_dir.join("checkpoint.redb");
        let views = crate::start_views(options, &state, None)
            .await
            .context("cannot start the views")?;
        let metrics: sluice_http::MetricsRenderer = {
            let views = Arc::clone(&views);
            Arc::new(move || sluice_view::metrics::render(&views))
        };
        let http_options = sluice_http::HttpOptions {
            header_read_timeout: HEADER_READ_TIMEOUT,
            cors_origins: sluice_http::CorsOrigins::Off,
            views: Some(Arc::new(ViewsAdapter(Arc::clone(&views)))),
            auth: None,
            tls: None,
            brokers: security,
        };
        let http = sluice_http::HttpApi::start(args.http_listen, bootstrap, metrics, http_options)
            .await
            .with_context(|| format!("cannot serve the HTTP API on {}", args.http_listen))?;
        tracing::info!(http = %args.http_listen, brokers = %target.brokers, views = views.all().len(), "view worker running");
        crate::wait_for_signal().await?;
        http.shutdown().await;
        views.stop().await;
        Ok(())
    })
}
