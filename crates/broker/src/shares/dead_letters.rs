//! Dead letters (KIP-1191): a record a member rejected, or one archived at the delivery
//! limit, is written to the group's dead-letter topic (`errors.deadletterqueue.topic.name`)
//! before the share-partition's state that archives it.
//!
//! A dead letter carries Kafka's context headers, each a UTF-8 string: `__dlq.errors.group`,
//! `__dlq.errors.topic`, `__dlq.errors.partition`, `__dlq.errors.offset`,
//! `__dlq.errors.delivery.count` and `__dlq.errors.message` (why: `rejected` or
//! `delivery count limit reached`). With `errors.deadletterqueue.copy.record.enable` it also
//! carries the record's key, value and headers; without it, no key and no value. It goes to
//! the dead-letter topic's partition of the same index (modulo its count), produced with
//! `acks=all` through that partition's leader (this broker or another, over the Kafka
//! protocol).
//!
//! As in Kafka, the dead-letter topic must have the topic config
//! `errors.deadletterqueue.group.enable=true`; a group naming a topic that is missing or does
//! not allow it has its records archived without dead letters (and a warning logged). A write
//! that fails is tried again at the share-partition's next write; dead letters still unwritten
//! when the broker stops are lost (the records stay archived).

use super::ShareEntry;
use crate::server::Broker;
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::ConfigResource;
use sluice_record::{Record, RecordHeader, decode_records};
use sluice_share::{ArchiveReason, DeadLetter, ShareGroupConfig, ShareStateKey};
use uuid::Uuid;

/// Dead letters of one produce request at most.
const DEAD_LETTERS_PER_REQUEST: usize = 500;
/// How long a dead-letter write waits for its topic's leader.
const DEAD_LETTER_TIMEOUT_MS: i32 = 30_000;

/// One dead letter, owned: its key, value and headers.
struct Letter {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Writes `dead` (of share-partition `key`, whose topic is `topic`) to the group's dead-letter
/// topic; `Err` with why if they are to be tried again.
pub(crate) async fn write(
    broker: &Broker,
    key: &ShareStateKey,
    config: &ShareGroupConfig,
    dead: &[DeadLetter],
) -> Result<(), String> {
    let Some(dlq) = &config.dead_letter_topic else {
        return Ok(());
    };
    let image = broker.published_image();
    let Some(source) = image.topics.get(&Uuid::from_u128(key.topic_id)) else {
        return Ok(()); // the source topic is gone: nothing to point at
    };
    let Some(target) = image.topic(dlq) else {
        tracing::warn!(group = %key.group, topic = %dlq, "the dead-letter topic does not exist; records are archived without dead letters");
        return Ok(());
    };
    let allowed = image
        .configs
        .get(&ConfigResource::Topic(dlq.clone()))
        .and_then(|c| c.get("errors.deadletterqueue.group.enable"))
        .is_some_and(|v| v.trim() == "true");
    if !allowed {
        tracing::warn!(group = %key.group, topic = %dlq, "the dead-letter topic lacks errors.deadletterqueue.group.enable=true; records are archived without dead letters");
        return Ok(());
    }
    let partition = key.partition % (target.partitions.len().max(1) as i32);
    let leader = target.partitions.get(&partition).map_or(-1, |p| p.leader);
    let letters: Vec<Letter> = dead
        .iter()
        .map(|d| letter(broker, key, &source.name, config, d))
        .collect();
    for chunk in letters.chunks(DEAD_LETTERS_PER_REQUEST) {
        produce(broker, dlq, partition, leader, chunk).await?;
    }
    Ok(())
}

fn letter(
    broker: &Broker,
    key: &ShareStateKey,
    topic: &str,
    config: &ShareGroupConfig,
    d: &DeadLetter,
) -> Letter {
    let reason = match d.reason {
        ArchiveReason::Rejected => "rejected",
        ArchiveReason::DeliveryLimit => "delivery count limit reached",
    };
    let context = [
        ("__dlq.errors.group", key.group.clone()),
        ("__dlq.errors.topic", topic.to_string()),
        ("__dlq.errors.partition", key.partition.to_string()),
        ("__dlq.errors.offset", d.offset.to_string()),
        ("__dlq.errors.delivery.count", d.delivery_count.to_string()),
        ("__dlq.errors.message", reason.to_string()),
    ];
    let mut letter = match config.dead_letter_copy_record {
        true => original(broker, topic, key.partition, d.offset),
        false => None,
    }
    .unwrap_or(Letter {
        key: None,
        value: None,
        headers: Vec::new(),
    });
    letter.headers.extend(
        context
            .into_iter()
            .map(|(k, v)| (k.to_string(), Some(v.into_bytes()))),
    );
    letter
}

/// The record at `offset` of a partition led here, if the log still holds it.
fn original(broker: &Broker, topic: &str, partition: i32, offset: i64) -> Option<Letter> {
    let partition = broker.logs.partition(topic, partition).ok()?;
    let plan = partition.log().read(offset, 1, true).ok()?;
    let bytes = partition.read_batches(&plan).ok()?;
    let mut found = None;
    for batch in sluice_record::BatchIter::new(&bytes) {
        let (header, batch) = batch.ok()?;
        if header.is_control() || header.last_offset() < offset {
            continue;
        }
        let _ = decode_records(batch, |r| {
            if r.offset != offset {
                return true;
            }
            found = Some(Letter {
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        let key = String::from_utf8_lossy(h.key).into_owned();
                        (key, h.value.map(<[u8]>::to_vec))
                    })
                    .collect(),
            });
            false
        });
        break;
    }
    found
}

async fn produce(
    broker: &Broker,
    topic: &str,
    partition: i32,
    leader: i32,
    letters: &[Letter],
) -> Result<(), String> {
    let now = crate::now_ms();
    let records: Vec<Record<'_>> = letters
        .iter()
        .enumerate()
        .map(|(i, l)| Record {
            offset: i as i64,
            timestamp: now,
            key: l.key.as_deref(),
            value: l.value.as_deref(),
            headers: l
                .headers
                .iter()
                .map(|(k, v)| RecordHeader {
                    key: k.as_bytes(),
                    value: v.as_deref(),
                })
                .collect(),
        })
        .collect();
    let batch = Bytes::from(sluice_record::encode_records(&records));
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(DEAD_LETTER_TIMEOUT_MS)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ]),
        ]);
    let image = broker.cluster.image();
    let address = broker
        .peer_address(&image, leader)
        .ok_or_else(|| format!("no live leader for {topic}-{partition}"))?;
    let response = broker.peers.send(leader, &address, &request).await?;
    let code = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .map(|p| p.error_code)
        .find(|&c| c != 0)
        .unwrap_or(0);
    match code {
        0 => Ok(()),
        code => Err(format!(
            "the dead-letter topic refused the records (error {code})"
        )),
    }
}

/// Takes the entry's dead letters and writes them; those not written go back for the next
/// try.
pub(crate) async fn flush(
    broker: &Broker,
    key: &ShareStateKey,
    entry: &ShareEntry,
    config: &ShareGroupConfig,
) {
    let dead = entry.take_dead();
    if dead.is_empty() {
        return;
    }
    if let Err(e) = write(broker, key, config, &dead).await {
        tracing::warn!(group = %key.group, partition = key.partition, records = dead.len(), error = %e,
            "dead letters not written; tried again at the next write");
        entry.put_back_dead(dead);
    }
}
