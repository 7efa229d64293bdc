//! `sluice user create|list|delete`: SCRAM users of a secured cluster (docs/security.md),
//! through Kafka's AlterUserScramCredentials and DescribeUserScramCredentials. The password is
//! salted and hashed here; only the salted password reaches the broker.

use super::{Output, Target, print_json};
use serde_json::json;
use sluice_client::security_admin;

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user, or set a user's password (for one SCRAM mechanism).
    ///
    /// Examples:
    ///   sluice user create alice --new-password 's3cret' --user admin --password admin-secret
    ///   SLUICE_NEW_PASSWORD='s3cret' sluice user create alice --mechanism SCRAM-SHA-256
    #[command(verbatim_doc_comment)]
    Create {
        name: String,
        /// The new user's password (the login's is --password).
        #[arg(long, env = "SLUICE_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
        /// SCRAM-SHA-512 or SCRAM-SHA-256.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = 4096)]
        iterations: i32,
    },
    /// List the users and their SCRAM mechanisms.
    ///
    /// Example:
    ///   sluice user list --format json
    #[command(verbatim_doc_comment)]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Output,
    },
    /// Delete a user's credential for a mechanism (by default every one it has).
    ///
    /// Example:
    ///   sluice user delete alice
    #[command(verbatim_doc_comment)]
    Delete {
        name: String,
        /// Only this mechanism's credential.
        #[arg(long)]
        mechanism: Option<String>,
    },
}

pub async fn run(target: &Target, command: UserCommand) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    match command {
        UserCommand::Create {
            name,
            new_password,
            mechanism,
            iterations,
        } => {
            let mechanism = security_admin::scram_mechanism(&mechanism)?;
            security_admin::set_user_password(
                &mut client,
                &name,
                mechanism,
                &new_password,
                iterations,
            )
            .await?;
            println!("user {name}: {mechanism} credential set");
        }
        UserCommand::List { format } => {
            let users = security_admin::describe_users(&mut client, &[]).await?;
            match format {
                Output::Json => print_json(&json!(
                    users
                        .iter()
                        .map(security_admin::UserCredentials::to_json)
                        .collect::<Vec<_>>()
                )),
                Output::Text => {
                    println!("{:<32} MECHANISMS", "USER");
                    for u in &users {
                        let mechanisms: Vec<String> = u
                            .credentials
                            .iter()
                            .map(|(m, i)| format!("{m} ({i} iterations)"))
                            .collect();
                        println!("{:<32} {}", u.user, mechanisms.join(", "));
                    }
                }
            }
        }
        UserCommand::Delete { name, mechanism } => {
            let mechanism = mechanism
                .map(|m| security_admin::scram_mechanism(&m))
                .transpose()?;
            for m in security_admin::delete_user_credentials(&mut client, &name, mechanism).await? {
                println!("user {name}: {m} credential deleted");
            }
        }
    }
    Ok(())
}
