//! Taking over a data directory: the topics a node held before it joined this metadata log
//! (a single node upgraded to the metadata log, or a data directory whose log was lost)
//! become metadata records, with their ids, partitions, configs and leader epochs, every
//! replica on that node. It happens only while the log does not know the node yet (its
//! first start in this cluster); afterwards the image alone says which topics exist, and a
//! local topic it lacks is a stray.

use super::QuorumController;
use crate::error::ControllerError;
use crate::record::{ConfigResource, MetadataRecord};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A topic as a node held it before the metadata log knew of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedTopic {
    pub name: String,
    pub topic_id: Uuid,
    /// Each partition's index and the last leader epoch its log holds.
    pub partitions: Vec<(i32, i32)>,
    pub configs: Vec<(String, String)>,
}

impl QuorumController {
    /// The records that register `topics` on broker `broker_id`, each partition led by it in
    /// an epoch above its log's (so the first batch it writes here starts a new epoch), or
    /// why a topic is not taken: its name or id is already in the image. Nothing when the
    /// broker is already registered: its directory was taken over before.
    pub fn import_topics(
        &self,
        broker_id: i32,
        topics: &[ImportedTopic],
    ) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
        if self.image.brokers.contains_key(&broker_id) {
            return (Vec::new(), Vec::new());
        }
        let mut records = Vec::new();
        let mut results = Vec::new();
        let mut taken = Vec::new();
        for topic in topics {
            let clash = self.image.topic(&topic.name).is_some()
                || self.image.topics.contains_key(&topic.topic_id)
                || taken.contains(&topic.topic_id);
            if clash {
                results.push(Err(ControllerError::TopicExists(topic.name.clone())));
                continue;
            }
            taken.push(topic.topic_id);
            records.extend(import_records(broker_id, topic));
            results.push(Ok(()));
        }
        (records, results)
    }
}

fn import_records(broker_id: i32, topic: &ImportedTopic) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::Topic {
        name: topic.name.clone(),
        topic_id: topic.topic_id,
    }];
    for &(partition, leader_epoch) in &topic.partitions {
        records.push(MetadataRecord::Partition {
            topic_id: topic.topic_id,
            partition,
            replicas: vec![broker_id],
            isr: vec![broker_id],
            leader: broker_id,
            leader_epoch: leader_epoch.max(-1) + 1,
            partition_epoch: 0,
        });
    }
    for (name, value) in &topic.configs {
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(topic.name.clone()),
            name: name.clone(),
            value: Some(value.clone()),
        });
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::{ControllerConfig, Registration};

    fn topic(name: &str, epochs: &[(i32, i32)]) -> ImportedTopic {
        ImportedTopic {
            name: name.into(),
            topic_id: Uuid::new_v4(),
            partitions: epochs.to_vec(),
            configs: vec![("retention.ms".into(), "1000".into())],
        }
    }

    fn replay(c: &mut QuorumController, records: &[MetadataRecord]) {
        records.iter().for_each(|r| c.replay(r));
    }

    #[test]
    fn a_new_nodes_topics_are_imported_with_higher_epochs() {
        let mut c = QuorumController::new(ControllerConfig::default());
        let orders = topic("orders", &[(0, 4), (1, -1)]);
        let (records, results) = c.import_topics(1, std::slice::from_ref(&orders));
        assert_eq!(results, vec![Ok(())]);
        replay(&mut c, &records);
        let image = c.image();
        let t = image.topic("orders").expect("imported");
        assert_eq!(t.topic_id, orders.topic_id);
        assert_eq!(t.partitions[&0].leader_epoch, 5);
        assert_eq!(t.partitions[&1].leader_epoch, 0);
        assert_eq!(t.partitions[&0].replicas, vec![1]);
        let resource = ConfigResource::Topic("orders".into());
        assert_eq!(image.configs[&resource]["retention.ms"], "1000");
    }

    #[test]
    fn a_known_node_or_name_imports_nothing() {
        let mut c = QuorumController::new(ControllerConfig::default());
        let (records, _) = c.import_topics(1, &[topic("orders", &[(0, 0)])]);
        replay(&mut c, &records);
        let (records, results) = c.import_topics(2, &[topic("orders", &[(0, 0)])]);
        assert!(records.is_empty());
        assert!(matches!(results[0], Err(ControllerError::TopicExists(_))));
        let registration = Registration {
            broker_id: 3,
            incarnation_id: Uuid::new_v4(),
            directory_id: Uuid::new_v4(),
            endpoints: vec![],
            rack: None,
        };
        let (records, _) = c.register_broker(registration, 0).expect("registers");
        replay(&mut c, &records);
        let (records, results) = c.import_topics(3, &[topic("payments", &[(0, 0)])]);
        assert!(records.is_empty() && results.is_empty());
    }
}
