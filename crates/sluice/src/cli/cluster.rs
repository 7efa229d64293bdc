//! `sluice cluster info`: the cluster id, the controller, the brokers and what they speak.

use super::{Output, Target, print_json};
use serde_json::json;
use sluice_client::admin;

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Show the cluster id, controller and brokers (with their state: serving or fenced), and the
    /// Kafka APIs the brokers serve.
    ///
    /// Example:
    ///   sluice cluster info --brokers broker-0.example:9092
    ///   sluice cluster info --format json
    #[command(verbatim_doc_comment)]
    Info {
        /// text: a table; json: one JSON document, for scripts.
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
}

pub async fn run(target: &Target, command: ClusterCommand) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    match command {
        ClusterCommand::Info { format } => {
            let cluster = admin::describe_cluster(&mut client).await?;
            let mut brokers = cluster.brokers;
            brokers.sort_by_key(|b| b.broker_id.0);
            let apis = client.any().api_count();
            if format == Output::Json {
                let brokers: Vec<serde_json::Value> = brokers
                    .iter()
                    .map(|b| {
                        json!({
                            "id": b.broker_id.0,
                            "host": b.host.to_string(),
                            "port": b.port,
                            "rack": b.rack.as_ref().map(|r| r.to_string()),
                            "fenced": b.is_fenced,
                            "controller": b.broker_id == cluster.controller_id,
                        })
                    })
                    .collect();
                print_json(&json!({
                    "cluster_id": cluster.cluster_id.to_string(),
                    "controller": cluster.controller_id.0,
                    "kafka_apis": apis,
                    "cli_version": env!("CARGO_PKG_VERSION"),
                    "brokers": brokers,
                }));
                return Ok(());
            }
            println!("cluster id   {}", cluster.cluster_id);
            println!("controller   {}", cluster.controller_id.0);
            println!("kafka apis   {apis}");
            println!("cli version  {}", env!("CARGO_PKG_VERSION"));
            println!();
            println!("BROKER  ADDRESS                         RACK    STATE");
            for b in brokers {
                let address = format!("{}:{}", b.host, b.port);
                let rack = b.rack.as_ref().map(|r| r.to_string());
                let state = broker_state(b.is_fenced, b.broker_id == cluster.controller_id);
                println!(
                    "{:<6}  {address:<30}  {:<6}  {state}",
                    b.broker_id.0,
                    rack.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(())
}

/// A broker's state as the cluster sees it: fenced (its session expired or it shut down) or
/// serving, and whether it is the active controller.
fn broker_state(fenced: bool, controller: bool) -> &'static str {
    match (fenced, controller) {
        (true, true) => "fenced, controller",
        (true, false) => "fenced",
        (false, true) => "serving, controller",
        (false, false) => "serving",
    }
}
