//! `ControllerCommand`: every request the active controller decides, as one value, so that a
//! node that is not the active controller can hand it on unchanged (the consensus crate sends
//! it over the controller listener) and the active one runs it through one entry point,
//! `QuorumController::execute`.
//!
//! Not owned here: how a command reaches the active controller, and the clock (`now_ms` is an
//! argument).

use crate::controller::{
    AclEntry, AclFilterEntry, AlterPartition, BrokerHeartbeat, ConfigChanges, HeartbeatReply,
    ImportedTopic, NewPartitions, NewTopic, PartitionState, QuorumController, QuotaAlteration,
    Registration, ScramDeletion, ScramUpsertion, TopicCreated,
};
use crate::error::ControllerError;
use crate::record::MetadataRecord;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerCommand {
    /// A new cluster's first records: its id (nothing once it has one).
    Bootstrap {
        cluster_id: String,
    },
    /// A broker registers (BrokerRegistration).
    RegisterBroker(Registration),
    /// A broker's heartbeat (BrokerHeartbeat).
    Heartbeat(BrokerHeartbeat),
    CreateTopics(Vec<NewTopic>),
    /// CreateTopics with `validate_only`: the same answers, no records.
    ValidateTopics(Vec<NewTopic>),
    /// A node's topics from before it joined the log (`import_topics`).
    ImportTopics {
        broker_id: i32,
        topics: Vec<ImportedTopic>,
    },
    DeleteTopics(Vec<String>),
    CreatePartitions(Vec<NewPartitions>),
    /// AlterConfigs and IncrementalAlterConfigs.
    AlterConfigs(Vec<ConfigChanges>),
    /// A block of producer ids for a broker (AllocateProducerIds).
    AllocateProducerIds {
        broker_id: i32,
        broker_epoch: i64,
    },
    /// Ids below `below` were handed out before the metadata log kept them (a data directory
    /// taken over): never hand them out.
    ReserveProducerIds {
        below: i64,
    },
    /// A partition leader's new in-sync set (AlterPartition).
    AlterPartition(AlterPartition),
    /// AlterUserScramCredentials, the keys derived from the salted passwords.
    AlterScramCredentials {
        deletions: Vec<ScramDeletion>,
        upsertions: Vec<ScramUpsertion>,
    },
    /// The bootstrap administrator's credentials, written where the user has none yet.
    BootstrapScram(Vec<ScramUpsertion>),
    CreateAcls(Vec<AclEntry>),
    DeleteAcls(Vec<AclFilterEntry>),
    /// AlterClientQuotas; `validate_only`: the same answers, no records.
    AlterClientQuotas {
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
    },
}

/// The answer to a command, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerReply {
    /// Done; nothing to tell.
    Done,
    /// The broker epoch of the registration.
    Registered(i64),
    Heartbeat(HeartbeatReply),
    TopicsCreated(Vec<Result<TopicCreated, ControllerError>>),
    TopicsImported(Vec<Result<(), ControllerError>>),
    TopicsDeleted(Vec<Result<Uuid, ControllerError>>),
    PartitionsCreated(Vec<Result<(), ControllerError>>),
    ConfigsAltered(Vec<Result<(), ControllerError>>),
    /// `(first, count)`.
    ProducerIds(i64, i64),
    /// The registration an AlterPartition left.
    PartitionAltered(PartitionState),
    /// One answer per user of an AlterUserScramCredentials, in the order first named.
    ScramCredentialsAltered(Vec<(String, Result<(), ControllerError>)>),
    AclsCreated(Vec<Result<(), ControllerError>>),
    /// Per filter, the ACLs it matched and removed.
    AclsDeleted(Vec<Result<Vec<AclEntry>, ControllerError>>),
    /// One answer per entity of an AlterClientQuotas, in order.
    QuotasAltered(Vec<Result<(), ControllerError>>),
    /// The command was refused as a whole.
    Refused(ControllerError),
}

impl QuorumController {
    /// Decides `command` at `now_ms`: the records that carry it out, and the answer to give once
    /// they are committed. A refused command has no records.
    pub fn execute(
        &mut self,
        command: ControllerCommand,
        now_ms: i64,
    ) -> (Vec<MetadataRecord>, ControllerReply) {
        let refused = |e| (Vec::new(), ControllerReply::Refused(e));
        match command {
            ControllerCommand::Bootstrap { cluster_id } => {
                (self.bootstrap(&cluster_id), ControllerReply::Done)
            }
            ControllerCommand::RegisterBroker(registration) => {
                match self.register_broker(registration, now_ms) {
                    Ok((records, epoch)) => (records, ControllerReply::Registered(epoch)),
                    Err(e) => refused(e),
                }
            }
            ControllerCommand::Heartbeat(heartbeat) => match self.heartbeat(heartbeat, now_ms) {
                Ok((records, reply)) => (records, ControllerReply::Heartbeat(reply)),
                Err(e) => refused(e),
            },
            ControllerCommand::CreateTopics(topics) => {
                let (records, results) = self.create_topics(&topics);
                (records, ControllerReply::TopicsCreated(results))
            }
            ControllerCommand::ValidateTopics(topics) => {
                let (_, results) = self.create_topics(&topics);
                (Vec::new(), ControllerReply::TopicsCreated(results))
            }
            ControllerCommand::ImportTopics { broker_id, topics } => {
                let (records, results) = self.import_topics(broker_id, &topics);
                (records, ControllerReply::TopicsImported(results))
            }
            ControllerCommand::DeleteTopics(names) => {
                let (records, results) = self.delete_topics(&names);
                (records, ControllerReply::TopicsDeleted(results))
            }
            ControllerCommand::CreatePartitions(changes) => {
                let (records, results) = self.create_partitions(&changes);
                (records, ControllerReply::PartitionsCreated(results))
            }
            ControllerCommand::AlterConfigs(changes) => {
                let (records, results) = self.alter_configs(&changes);
                (records, ControllerReply::ConfigsAltered(results))
            }
            ControllerCommand::AllocateProducerIds {
                broker_id,
                broker_epoch,
            } => match self.allocate_producer_ids(broker_id, broker_epoch) {
                Ok((records, (first, count))) => {
                    (records, ControllerReply::ProducerIds(first, count))
                }
                Err(e) => refused(e),
            },
            ControllerCommand::ReserveProducerIds { below } => {
                (self.reserve_producer_ids(below), ControllerReply::Done)
            }
            ControllerCommand::AlterPartition(proposal) => match self.alter_partition(&proposal) {
                Ok((records, state)) => (records, ControllerReply::PartitionAltered(state)),
                Err(e) => refused(e),
            },
            ControllerCommand::AlterScramCredentials {
                deletions,
                upsertions,
            } => {
                let (records, results) = self.alter_scram_credentials(&deletions, &upsertions);
                (records, ControllerReply::ScramCredentialsAltered(results))
            }
            ControllerCommand::BootstrapScram(credentials) => {
                (self.bootstrap_scram(&credentials), ControllerReply::Done)
            }
            ControllerCommand::CreateAcls(entries) => {
                let (records, results) = self.create_acls(&entries);
                (records, ControllerReply::AclsCreated(results))
            }
            ControllerCommand::DeleteAcls(filters) => {
                let (records, results) = self.delete_acls(&filters);
                (records, ControllerReply::AclsDeleted(results))
            }
            ControllerCommand::AlterClientQuotas {
                alterations,
                validate_only,
            } => {
                let (records, results) = self.alter_client_quotas(&alterations);
                let records = if validate_only { Vec::new() } else { records };
                (records, ControllerReply::QuotasAltered(results))
            }
        }
    }
}
