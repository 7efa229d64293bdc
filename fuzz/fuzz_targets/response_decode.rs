//! Fuzzes what Sluice's own client (the CLI, the HTTP API) does with a frame from a broker it
//! cannot trust: the response decoder of every API the client sends, then what it does with
//! the parts it reads further (fetched record batches, a group member's assignment bytes).
//! The first four bytes pick the API key and version; the rest is the frame.

#![no_main]

use kafka_protocol::messages::*;
use libfuzzer_sys::fuzz_target;
use sluice_protocol::decode_response;

#[global_allocator]
static ALLOCATOR: sluice_alloc_guard::ReservingAllocator = sluice_alloc_guard::ReservingAllocator;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let key = i16::from_be_bytes([data[0], data[1]]);
    let version = i16::from_be_bytes([data[2], data[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return;
    };
    let frame = bytes::Bytes::copy_from_slice(&data[4..]);
    macro_rules! decode {
        ($t:ty) => {
            decode_response::<$t>(frame, api, version).map(|(_, body)| body)
        };
    }
    let _ = match api {
        ApiKey::ApiVersions => decode!(ApiVersionsResponse).map(drop),
        ApiKey::Metadata => decode!(MetadataResponse).map(drop),
        ApiKey::Produce => decode!(ProduceResponse).map(drop),
        ApiKey::Fetch => decode!(FetchResponse).map(|r| {
            for p in r.responses.iter().flat_map(|t| &t.partitions) {
                let records = p.records.clone().unwrap_or_default();
                let _ = sluice_client::data::for_each_record(&records, 0, |r| {
                    let _ = sluice_client::json::record_to_json(None, Some(0), r);
                });
            }
        }),
        ApiKey::ListOffsets => decode!(ListOffsetsResponse).map(drop),
        ApiKey::CreateTopics => decode!(CreateTopicsResponse).map(drop),
        ApiKey::DeleteTopics => decode!(DeleteTopicsResponse).map(drop),
        ApiKey::CreatePartitions => decode!(CreatePartitionsResponse).map(drop),
        ApiKey::DescribeConfigs => decode!(DescribeConfigsResponse).map(drop),
        ApiKey::IncrementalAlterConfigs => decode!(IncrementalAlterConfigsResponse).map(drop),
        ApiKey::DescribeCluster => decode!(DescribeClusterResponse).map(drop),
        ApiKey::DescribeLogDirs => decode!(DescribeLogDirsResponse).map(drop),
        ApiKey::FindCoordinator => decode!(FindCoordinatorResponse).map(drop),
        ApiKey::ListGroups => decode!(ListGroupsResponse).map(drop),
        ApiKey::DescribeGroups => decode!(DescribeGroupsResponse).map(|r| {
            for m in r.groups.iter().flat_map(|g| &g.members) {
                let _ = sluice_client::groups::assigned_partitions(&m.member_assignment);
            }
        }),
        ApiKey::OffsetFetch => decode!(OffsetFetchResponse).map(drop),
        ApiKey::OffsetCommit => decode!(OffsetCommitResponse).map(drop),
        ApiKey::DeleteGroups => decode!(DeleteGroupsResponse).map(drop),
        ApiKey::ConsumerGroupHeartbeat => decode!(ConsumerGroupHeartbeatResponse).map(drop),
        _ => return,
    };
});
