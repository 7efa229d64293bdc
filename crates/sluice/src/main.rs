//! The `sluice` binary: `serve` parses configuration once, wires the broker, and shuts it down
//! cleanly on SIGTERM or Ctrl-C; the other commands are the client CLI (`cli`). Nothing
//! depends on this crate.

mod cli;
mod http_security;
mod inter_broker;
mod listeners;
mod scram_bootstrap;
mod settings;
mod unknown_settings;
mod views;
mod worker;

use clap::{Parser, Subcommand};
use settings::{ServeArgs, ServeSettings};
use sluice_broker::{ClusterView, RunningBroker};
use sluice_cluster::ClusterNode;
use std::sync::Arc;
use std::time::Duration;

/// How long a starting node waits for its broker to be let in (registered and unfenced)
/// before it serves anyway and keeps trying in the background.
const UNFENCE_WAIT: Duration = Duration::from_secs(30);
/// How long taking over a data directory's topics may wait for the controller.
const IMPORT_WAIT: Duration = Duration::from_secs(60);
/// How long a stopping broker waits for its controlled shutdown to show in its metadata (it
/// leads nothing), before it stops serving anyway.
const LEADERSHIP_HANDOVER_WAIT: Duration = Duration::from_secs(5);

#[global_allocator]
static ALLOCATOR: sluice_alloc_guard::ReservingAllocator = sluice_alloc_guard::ReservingAllocator;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "An event-streaming platform that speaks the Kafka protocol"
)]
struct Cli {
    /// Where the cluster is, for the client commands: global, so it goes before or after the
    /// command (`sluice --brokers H:P topic list` or `sluice topic list --brokers H:P`).
    #[command(flatten)]
    target: cli::Target,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single-node broker (Kafka listener on 127.0.0.1:9092, data in ./sluice-data).
    ///
    /// Every setting can also come from a TOML file (--config) or a SLUICE_<NAME> environment
    /// variable; flags win over the environment, which wins over the file.
    ///
    /// Examples:
    ///   sluice serve
    ///   sluice serve --data-dir /var/lib/sluice --listen 0.0.0.0:9092 --advertised-listener broker-0.example:9092
    ///   SLUICE_LISTEN=127.0.0.1:19092 sluice serve --config sluice.toml
    #[command(verbatim_doc_comment)]
    Serve(Box<ServeArgs>),
    /// Manage topics: create, list, describe, alter-config, add-partitions, delete.
    ///
    /// Example:
    ///   sluice topic create orders --partitions 6 --config retention.ms=86400000
    #[command(verbatim_doc_comment)]
    Topic {
        #[command(subcommand)]
        command: cli::topic::TopicCommand,
    },
    /// Write records to a topic, one per line of stdin or a file.
    ///
    /// Examples:
    ///   echo hello | sluice produce greetings
    ///   printf 'user-1:{"name":"Ada"}\n' | sluice produce users --key-separator :
    ///   sluice produce events --file events.jsonl --header source=import --acks 1
    #[command(verbatim_doc_comment)]
    Produce {
        #[command(flatten)]
        args: cli::produce::ProduceArgs,
    },
    /// Print records of a topic.
    ///
    /// Without --follow, stops at the end of each partition as it was when the command started.
    ///
    /// Examples:
    ///   sluice consume orders                      # everything there is, then exit
    ///   sluice consume orders -o end --follow      # new records as they come
    ///   sluice consume orders -o -10               # the last 10 of each partition
    ///   sluice consume orders -o @-1h -f '%p:%o %k=%v\n'
    ///   sluice consume orders -o @2026-11-23T09:00:00Z -n 10 --format json
    ///   sluice consume orders payments --partition 2 -o 1500
    ///   sluice consume '^orders-.*' --isolation read_committed
    ///   sluice consume orders --group billing      # as a group member, committing
    #[command(verbatim_doc_comment)]
    Consume {
        #[command(flatten)]
        args: cli::consume::ConsumeArgs,
    },
    /// Manage consumer groups: list, describe (with lag), reset-offsets, delete.
    ///
    /// Example:
    ///   sluice group describe billing
    #[command(verbatim_doc_comment)]
    Group {
        #[command(subcommand)]
        command: cli::group::GroupCommand,
    },
    /// Manage share groups (queues, KIP-932): list, describe (start offsets and lag),
    /// reset-offsets, delete.
    ///
    /// Example:
    ///   sluice share-group describe workers
    #[command(verbatim_doc_comment)]
    ShareGroup {
        #[command(subcommand)]
        command: cli::share_group::ShareGroupCommand,
    },
    /// Manage SCRAM users of a secured cluster: create, list, delete.
    ///
    /// Example:
    ///   sluice user create alice --new-password s3cret --user admin --password admin-secret
    #[command(verbatim_doc_comment)]
    User {
        #[command(subcommand)]
        command: cli::user::UserCommand,
    },
    /// Manage ACLs: add, list, remove (rpk-like flags).
    ///
    /// Example:
    ///   sluice acl add --allow-principal User:alice --operation write --topic orders- --resource-pattern-type prefixed
    #[command(verbatim_doc_comment)]
    Acl {
        #[command(subcommand)]
        command: cli::acl::AclCommand,
    },
    /// Manage client quotas: set, list (producer_byte_rate, consumer_byte_rate,
    /// request_percentage per user and client id).
    ///
    /// Example:
    ///   sluice quota set --name client-id=billing producer_byte_rate=1048576
    #[command(verbatim_doc_comment)]
    Quota {
        #[command(subcommand)]
        command: cli::quota::QuotaCommand,
    },
    /// Describe the cluster.
    ///
    /// Example:
    ///   sluice cluster info --brokers broker-0.example:9092
    #[command(verbatim_doc_comment)]
    Cluster {
        #[command(subcommand)]
        command: cli::cluster::ClusterCommand,
    },
    /// Run a SQL statement on the views of `sluice serve` (over its HTTP API, --http-url).
    ///
    /// Examples:
    ///   sluice sql "CREATE MATERIALIZED VIEW balances AS SELECT account, SUM(amount) AS balance FROM payments GROUP BY account"
    ///   sluice sql "SELECT * FROM balances ORDER BY balance DESC LIMIT 10"
    ///   sluice sql -f views.sql
    #[command(verbatim_doc_comment)]
    Sql {
        #[command(flatten)]
        args: cli::views::SqlArgs,
    },
    /// Look at tables and views: list, describe, get, rows, watch, rebuild, drop.
    ///
    /// Examples:
    ///   sluice view list
    ///   sluice view get balances acct-42 --min-position payments:3:1041
    ///   sluice view rows balances --prefix acct- --limit 20
    ///   sluice view watch balances --snapshot
    #[command(verbatim_doc_comment)]
    View {
        #[command(subcommand)]
        command: cli::views::ViewCommand,
    },
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   sluice completions bash > /etc/bash_completion.d/sluice
    ///   sluice completions zsh > "${fpath[1]}/_sluice"
    #[command(verbatim_doc_comment)]
    Completions { shell: clap_complete::Shell },
}

fn main() -> std::process::ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(refusal) = client_flag_misused(&matches) {
        refusal.exit();
    }
    let target = cli.target;
    match cli.command {
        Command::Serve(args) => match run_serve(*args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                // Not eprintln!: a full disk under stderr must not turn an error into a panic.
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "sluice serve: {e:#}");
                if let Some(hint) = serve_hint(&e) {
                    let _ = writeln!(std::io::stderr(), "hint: {hint}");
                }
                std::process::ExitCode::FAILURE
            }
        },
        Command::Topic { command } => cli::run("topic", &target, cli::topic::run(&target, command)),
        Command::Produce { args } => cli::run("produce", &target, cli::produce::run(&target, args)),
        Command::Consume { args } => cli::run("consume", &target, cli::consume::run(&target, args)),
        Command::Group { command } => cli::run("group", &target, cli::group::run(&target, command)),
        Command::ShareGroup { command } => cli::run(
            "share-group",
            &target,
            cli::share_group::run(&target, command),
        ),
        Command::Cluster { command } => {
            cli::run("cluster", &target, cli::cluster::run(&target, command))
        }
        Command::User { command } => cli::run("user", &target, cli::user::run(&target, command)),
        Command::Acl { command } => cli::run("acl", &target, cli::acl::run(&target, command)),
        Command::Quota { command } => cli::run("quota", &target, cli::quota::run(&target, command)),
        Command::Sql { args } => cli::run("sql", &target, cli::views::sql(&target, args)),
        Command::View {
            command: cli::views::ViewCommand::Worker(args),
        } => match worker::run(&target, args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "sluice view worker: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::View { command } => cli::run("view", &target, cli::views::run(&target, command)),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "sluice", &mut std::io::stdout());
            std::process::ExitCode::SUCCESS
        }
    }
}

/// What to do about a failed start, when there is something obvious: an address in use names
/// the setting that moves it.
fn serve_hint(e: &anyhow::Error) -> Option<String> {
    let in_use = e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
            || cause.downcast_ref::<sluice_broker::StartError>().is_some_and(|s| {
                matches!(s, sluice_broker::StartError::Bind { error, .. } if error.kind() == std::io::ErrorKind::AddrInUse)
            })
    });
    if !in_use {
        return None;
    }
    let text = format!("{e:#}");
    let setting = if text.contains("HTTP API") {
        "--http-listen (SLUICE_HTTP_LISTEN; `off` turns the HTTP API off)"
    } else if text.contains("controllers") {
        "--controller-listen (SLUICE_CONTROLLER_LISTEN)"
    } else {
        "--listen (SLUICE_LISTEN)"
    };
    Some(format!(
        "another process holds that address (a Sluice or Kafka already running? `ss -ltnp` names it); stop it, or choose another address with {setting}"
    ))
}

/// The connection flags are global, so clap lets them reach `serve` and `completions` too,
/// where they would do nothing: given there on the command line, they are refused.
fn client_flag_misused(matches: &clap::ArgMatches) -> Option<clap::Error> {
    let (name, sub) = matches.subcommand()?;
    if !matches!(name, "serve" | "completions") {
        return None;
    }
    let given = ["brokers", "timeout", "http_url"]
        .into_iter()
        .find(|id| sub.value_source(id) == Some(clap::parser::ValueSource::CommandLine))?;
    let message = format!(
        "--{} is for the client commands (topic, produce, consume, group, cluster, sql, view), not `{name}`",
        given.replace('_', "-")
    );
    let mut command = <Cli as clap::CommandFactory>::command();
    Some(command.error(clap::error::ErrorKind::ArgumentConflict, message))
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = ServeSettings::load(&args)?;
    init_logging(&settings.log_format);
    let mut config = settings.broker_config()?;
    let http_address = settings.http_address()?;
    let http_modes = match http_address {
        Some(address) => Some(http_security::http_auth_modes(
            address,
            &settings.http_auth,
        )?),
        None => None,
    };
    if let Some(modes) = http_modes {
        config.http_tls = http_security::http_tls(&settings, modes)?;
    }
    // The in-process clients (views, the HTTP API) reach this broker on its plain loopback
    // listener and the others as the broker does.
    let in_process = sluice_client::security::Security {
        elsewhere: Some(Arc::new(config.inter_broker.security.clone())),
        ..Default::default()
    };
    let bootstrap_scram = settings.bootstrap_scram()?;
    let cluster_config = settings.cluster_config()?;
    let roles = settings.roles()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()?;
    // The HTTP API waits for request headers as long as the broker waits for a frame.
    let header_timeout = std::time::Duration::from_millis(config.request_timeout_ms);
    let cors_origins =
        sluice_http::parse_cors_origins(&settings.http_cors_origins).map_err(anyhow::Error::msg)?;
    let voters = cluster_config.voters.len();
    let views_on = settings.views_on()?;
    let views_commit_interval = Duration::from_millis(settings.views_commit_interval_ms.max(1));
    let views_state = settings.data_dir.join("views").join("checkpoint.redb");
    // On a cluster each view runs on one node, found through the others' HTTP APIs.
    let views_placement = (voters > 1).then(|| sluice_view::service::Placement {
        node_id: settings.node_id,
        brokers: voters,
        http_url: http_address.map_or(String::new(), |listen| {
            settings.http_url(listen, &config.advertised_host)
        }),
    });
    runtime.block_on(async move {
        let node = Arc::new(ClusterNode::start(cluster_config).await?);
        let stopped = tokio::select! {
            () = wait_for_controller(&node) => false,
            signal = wait_for_signal() => { signal?; true }
        };
        if stopped {
            node.shutdown().await;
            return Ok(());
        }
        if !roles.broker {
            // A controller alone: the metadata log and the controller listener, no Kafka
            // listener and no HTTP API (the gateway is a client of a local broker).
            tracing::info!("controller only (--roles controller): serving no Kafka clients");
            wait_for_signal().await?;
            node.shutdown().await;
            return Ok(());
        }
        let view: Arc<dyn ClusterView> = Arc::new(NodeView(node.clone()));
        let mut broker = RunningBroker::start(config, view).await?;
        let cluster_id = node.bootstrap(broker.local_cluster_id()).await?;
        if !bootstrap_scram.is_empty() {
            let users = bootstrap_scram.len();
            let command = sluice_controller::ControllerCommand::BootstrapScram(bootstrap_scram);
            node.submit(command, IMPORT_WAIT).await?;
            tracing::info!(users, "bootstrap SCRAM credentials written where none were");
        }
        node.reserve_producer_ids(broker.legacy_producer_id_floor())
            .await?;
        import_local_topics(&node, &broker).await?;
        let incarnation_id = uuid::Uuid::new_v4();
        broker.follow_metadata(node.images(), incarnation_id);
        node.run_broker(sluice_controller::Registration {
            broker_id: node.node_id(),
            incarnation_id,
            directory_id: broker.directory_id(),
            endpoints: broker.endpoints(),
            rack: None,
        });
        if node.wait_unfenced(UNFENCE_WAIT).await {
            tracing::info!(%cluster_id, node_id = node.node_id(), "broker registered and unfenced");
        } else {
            tracing::warn!("the broker is not unfenced yet; serving while it keeps trying");
        }
        if !broker.wait_published(incarnation_id, UNFENCE_WAIT).await {
            tracing::warn!("the broker's storage does not follow the metadata yet; serving anyway");
        }
        // The internal topics are placed when created: a new cluster creates them once all of
        // its brokers are in (or when a client first asks for a coordinator).
        let create_internal_topics = broker.create_internal_topics();
        if node.image().unfenced_brokers().len() >= voters {
            create_internal_topics.await;
        } else {
            let node = node.clone();
            tokio::spawn(async move {
                let mut images = node.images();
                let full = images
                    .wait_for(|i| i.unfenced_brokers().len() >= voters)
                    .await
                    .is_ok();
                if full {
                    create_internal_topics.await;
                }
            });
        }
        broker.serve_clients();
        reload_security_files_on_sighup(broker.file_reloader());
        // Views are Kafka clients of this broker too, through the internal listener.
        let views =
            if views_on {
                let options = sluice_view::engine::EngineOptions {
                    bootstrap: broker.internal_addr().to_string(),
                    security: in_process.clone(),
                    commit_interval: views_commit_interval,
                    faults: None,
                };
                let started = start_views(options, &views_state, views_placement).await;
                Some(started.map_err(|e| {
                    e.context("cannot start the views (--views off runs without them)")
                })?)
            } else {
                None
            };
        let http = match (http_address, http_modes) {
            (Some(address), Some(modes)) => {
                // The gateway is a Kafka client of this broker, through the broker's internal
                // loopback listener (outside the client connection caps).
                let bootstrap = broker.internal_addr().to_string();
                anyhow::ensure!(
                    !modes.bearer || settings.sasl_oauthbearer_jwks_endpoint_url.is_some(),
                    "--http-auth bearer checks tokens as OAUTHBEARER does: set sasl_oauthbearer_jwks_endpoint_url"
                );
                let options = sluice_http::HttpOptions {
                    header_read_timeout: header_timeout,
                    cors_origins: cors_origins.clone(),
                    views: views.clone().map(|v| {
                        Arc::new(views::ViewsAdapter(v)) as Arc<dyn sluice_http::ViewsService>
                    }),
                    auth: http_security::http_auth(modes, broker.caller_checks()),
                    tls: broker.http_tls().map(|reloadable| {
                        sluice_http::TlsConfigs(Arc::new(move || reloadable.current()))
                    }),
                    brokers: in_process.clone(),
                };
                let api = sluice_http::HttpApi::start(
                    address,
                    bootstrap,
                    metrics_renderer(broker.metrics_renderer(), views.clone()),
                    options,
                )
                .await
                .map_err(|e| {
                    anyhow::Error::from(e)
                        .context(format!("cannot serve the HTTP API on {address}"))
                })?;
                Some(api)
            }
            _ => None,
        };
        wait_for_signal().await?;
        if let Some(http) = http {
            http.shutdown().await;
        }
        if let Some(views) = views {
            views.stop().await;
        }
        // A controlled shutdown first: leadership moves to in-sync followers while this broker
        // still answers, so clients follow it with no more than a NOT_LEADER_OR_FOLLOWER.
        if node.leave().await {
            broker.wait_leading_nothing(LEADERSHIP_HANDOVER_WAIT).await;
        }
        broker.shutdown().await?;
        node.shutdown().await;
        Ok(())
    })
}

/// The broker's metrics followed by the views' (when they run), as one exposition.
fn metrics_renderer(
    broker: sluice_http::MetricsRenderer,
    views: Option<Arc<sluice_view::service::Views>>,
) -> sluice_http::MetricsRenderer {
    match views {
        None => broker,
        Some(views) => Arc::new(move || {
            sluice_http::join_metrics(&broker(), &sluice_view::metrics::render(&views))
        }),
    }
}

/// Starts the view engine: its checkpoint under the data directory, its definitions from the
/// catalog topic.
pub(crate) async fn start_views(
    options: sluice_view::engine::EngineOptions,
    state: &std::path::Path,
    placement: Option<sluice_view::service::Placement>,
) -> anyhow::Result<Arc<sluice_view::service::Views>> {
    use anyhow::Context;
    if let Some(dir) = state.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the views' directory {}", dir.display()))?;
    }
    Ok(sluice_view::service::Views::start(options, state, placement).await?)
}

/// On this node's first start in the cluster (the log does not know its broker yet), its data
/// directory's topics become metadata records (a single node upgraded to the metadata log).
async fn import_local_topics(node: &ClusterNode, broker: &RunningBroker) -> anyhow::Result<()> {
    let topics = broker.local_topics();
    if topics.is_empty() || node.image().brokers.contains_key(&node.node_id()) {
        return Ok(());
    }
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let command = sluice_controller::ControllerCommand::ImportTopics {
        broker_id: node.node_id(),
        topics,
    };
    let reply = node.submit(command, IMPORT_WAIT).await?;
    if let sluice_controller::ControllerReply::TopicsImported(results) = reply {
        for (name, result) in names.iter().zip(results) {
            match result {
                Ok(()) => {
                    tracing::info!(topic = %name, "local topic taken over into the cluster's metadata")
                }
                Err(e) => tracing::warn!(topic = %name, error = %e, "local topic not taken over"),
            }
        }
    }
    Ok(())
}

/// Waits for an active controller, saying so now and then (the other voters may not be up).
async fn wait_for_controller(node: &ClusterNode) {
    loop {
        if let Some(id) = node.wait_for_controller(Duration::from_secs(5)).await {
            tracing::info!(controller = id, "active controller known");
            return;
        }
        tracing::warn!("waiting for a quorum of controllers (--controllers)");
    }
}

/// The broker's window on the metadata log.
struct NodeView(Arc<ClusterNode>);

impl std::fmt::Debug for NodeView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeView({})", self.0.node_id())
    }
}

impl ClusterView for NodeView {
    fn submit(
        &self,
        command: sluice_controller::ControllerCommand,
        limit: Duration,
    ) -> futures::future::BoxFuture<'static, Result<sluice_controller::ControllerReply, String>>
    {
        let node = self.0.clone();
        Box::pin(async move {
            match node.submit(command, limit).await {
                Ok(reply) => Ok(reply),
                Err(sluice_cluster::ClusterError::Refused(e)) => {
                    Ok(sluice_controller::ControllerReply::Refused(e))
                }
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn image(&self) -> Arc<sluice_controller::MetadataImage> {
        self.0.image()
    }

    fn controller_id(&self) -> Option<i32> {
        self.0.controller_id()
    }

    fn allocate_producer_ids(
        &self,
    ) -> futures::future::BoxFuture<'static, Result<(i64, i64), String>> {
        let node = self.0.clone();
        Box::pin(async move {
            let block = node.allocate_producer_ids().await;
            block.map_err(|e| e.to_string())
        })
    }
}

/// SIGHUP reads the TLS listeners' certificates and the OAUTHBEARER JWKS again (as a changed
/// file does by itself).
fn reload_security_files_on_sighup(reloader: sluice_broker::FileReloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!(
            "cannot listen for SIGHUP; TLS certificates and the JWKS are read again when their files change"
        );
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reading the TLS certificates and the JWKS again");
            reloader.reload();
        }
    });
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

pub(crate) fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| "info,openraft=warn".into());
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log that cannot be written (its disk is full) is lost, never a panic.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
