//! ListOffsets (v1–v7): earliest (-2), latest (-1: the high watermark, or with
//! `isolation_level=read_committed` (v2+) the last stable offset), the record with the largest
//! timestamp (-3, v7), or the first record at or after a timestamp. From v4 a partition's
//! `current_leader_epoch` is checked as Fetch checks it (KIP-320).

use super::now;
use crate::error;
use crate::server::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const READ_COMMITTED: i8 = 1;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: ListOffsetsRequest,
    version: i16,
) -> std::future::Ready<Option<ListOffsetsResponse>> {
    let committed = request.isolation_level == READ_COMMITTED;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let at = Lookup {
                        timestamp: p.timestamp,
                        current_leader_epoch: p.current_leader_epoch,
                        committed,
                        version,
                    };
                    lookup(broker, &t.name, p.partition_index, at)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    now(ListOffsetsResponse::default().with_topics(topics))
}

/// What one partition's lookup asks for.
struct Lookup {
    timestamp: i64,
    /// -1 (no check) before v4, where the field does not exist.
    current_leader_epoch: i32,
    committed: bool,
    version: i16,
}

fn lookup(broker: &Broker, topic: &str, index: i32, at: Lookup) -> ListOffsetsPartitionResponse {
    let Lookup {
        timestamp,
        current_leader_epoch,
        committed,
        version,
    } = at;
    let base = ListOffsetsPartitionResponse::default().with_partition_index(index);
    let led = broker
        .metadata()
        .led_partition(topic, index, current_leader_epoch);
    let partition = match led {
        Ok(p) => p,
        Err(e) => return base.with_error_code(e.code()),
    };
    let log = partition.log();
    let found = match timestamp {
        LATEST if committed => Ok(Some((log.last_stable_offset(), -1))),
        LATEST => Ok(Some((log.high_watermark(), -1))),
        EARLIEST => Ok(Some((log.log_start_offset(), -1))),
        MAX_TIMESTAMP if version >= 7 => match log.max_timestamp() {
            -1 => Ok(None),
            max => log.offset_for_timestamp(max),
        },
        t if t < 0 => return base.with_error_code(ResponseError::InvalidRequest.code()),
        t => log.offset_for_timestamp(t),
    };
    match found {
        Ok(Some((offset, ts))) => {
            // The leader epoch field exists from v4 on; encoding it earlier is an error.
            let epoch = if version >= 4 {
                log.epoch_for_offset(offset)
            } else {
                -1
            };
            base.with_offset(offset)
                .with_timestamp(ts)
                .with_leader_epoch(epoch)
        }
        Ok(None) => base.with_offset(-1).with_timestamp(-1),
        Err(e) => base.with_error_code(error::code(&e)),
    }
}
