//! Fuzzes what the broker does with a frame from the wire: header parsing, then the body
//! decoder of every API the broker serves, under the same allocator as the binary.

#![no_main]

use kafka_protocol::messages::*;
use libfuzzer_sys::fuzz_target;
use sluice_protocol::{decode_body, decode_request};

#[global_allocator]
static ALLOCATOR: sluice_alloc_guard::ReservingAllocator = sluice_alloc_guard::ReservingAllocator;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = decode_request(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    let v = request.header.request_api_version;
    let body = request.body;
    let _ = match request.api_key {
        ApiKey::Produce => decode_body::<ProduceRequest>(body, v).map(drop),
        ApiKey::Fetch => decode_body::<FetchRequest>(body, v).map(drop),
        ApiKey::ListOffsets => decode_body::<ListOffsetsRequest>(body, v).map(drop),
        ApiKey::OffsetForLeaderEpoch => {
            decode_body::<OffsetForLeaderEpochRequest>(body, v).map(drop)
        }
        ApiKey::Metadata => decode_body::<MetadataRequest>(body, v).map(drop),
        ApiKey::ApiVersions => decode_body::<ApiVersionsRequest>(body, v).map(drop),
        ApiKey::CreateTopics => decode_body::<CreateTopicsRequest>(body, v).map(drop),
        ApiKey::DeleteTopics => decode_body::<DeleteTopicsRequest>(body, v).map(drop),
        ApiKey::DeleteRecords => decode_body::<DeleteRecordsRequest>(body, v).map(drop),
        ApiKey::DescribeConfigs => decode_body::<DescribeConfigsRequest>(body, v).map(drop),
        ApiKey::AlterConfigs => decode_body::<AlterConfigsRequest>(body, v).map(drop),
        ApiKey::CreatePartitions => decode_body::<CreatePartitionsRequest>(body, v).map(drop),
        ApiKey::IncrementalAlterConfigs => decode_body::<IncrementalAlterConfigsRequest>(body, v).map(drop),
        ApiKey::DescribeCluster => decode_body::<DescribeClusterRequest>(body, v).map(drop),
        ApiKey::FindCoordinator => decode_body::<FindCoordinatorRequest>(body, v).map(drop),
        ApiKey::JoinGroup => decode_body::<JoinGroupRequest>(body, v).map(drop),
        ApiKey::SyncGroup => decode_body::<SyncGroupRequest>(body, v).map(drop),
        ApiKey::Heartbeat => decode_body::<HeartbeatRequest>(body, v).map(drop),
        ApiKey::LeaveGroup => decode_body::<LeaveGroupRequest>(body, v).map(drop),
        ApiKey::OffsetCommit => decode_body::<OffsetCommitRequest>(body, v).map(drop),
        ApiKey::OffsetFetch => decode_body::<OffsetFetchRequest>(body, v).map(drop),
        ApiKey::ListGroups => decode_body::<ListGroupsRequest>(body, v).map(drop),
        ApiKey::DescribeGroups => decode_body::<DescribeGroupsRequest>(body, v).map(drop),
        ApiKey::DeleteGroups => decode_body::<DeleteGroupsRequest>(body, v).map(drop),
        ApiKey::OffsetDelete => decode_body::<OffsetDeleteRequest>(body, v).map(drop),
        ApiKey::ConsumerGroupHeartbeat => decode_body::<ConsumerGroupHeartbeatRequest>(body, v).map(drop),
        ApiKey::ShareGroupHeartbeat => decode_body::<ShareGroupHeartbeatRequest>(body, v).map(drop),
        ApiKey::ShareGroupDescribe => decode_body::<ShareGroupDescribeRequest>(body, v).map(drop),
        ApiKey::ShareFetch => decode_body::<ShareFetchRequest>(body, v).map(drop),
        ApiKey::ShareAcknowledge => decode_body::<ShareAcknowledgeRequest>(body, v).map(drop),
        ApiKey::DeleteShareGroupOffsets => decode_body::<DeleteShareGroupOffsetsRequest>(body, v).map(drop),
        ApiKey::DeleteShareGroupState => decode_body::<DeleteShareGroupStateRequest>(body, v).map(drop),
        ApiKey::DescribeShareGroupOffsets => decode_body::<DescribeShareGroupOffsetsRequest>(body, v).map(drop),
        ApiKey::AlterShareGroupOffsets => decode_body::<AlterShareGroupOffsetsRequest>(body, v).map(drop),
        ApiKey::ReadShareGroupState => decode_body::<ReadShareGroupStateRequest>(body, v).map(drop),
        ApiKey::WriteShareGroupState => decode_body::<WriteShareGroupStateRequest>(body, v).map(drop),
        ApiKey::ConsumerGroupDescribe => decode_body::<ConsumerGroupDescribeRequest>(body, v).map(drop),
        ApiKey::DescribeLogDirs => decode_body::<DescribeLogDirsRequest>(body, v).map(drop),
        ApiKey::InitProducerId => decode_body::<InitProducerIdRequest>(body, v).map(drop),
        ApiKey::AddPartitionsToTxn => decode_body::<AddPartitionsToTxnRequest>(body, v).map(drop),
        ApiKey::AddOffsetsToTxn => decode_body::<AddOffsetsToTxnRequest>(body, v).map(drop),
        ApiKey::TxnOffsetCommit => decode_body::<TxnOffsetCommitRequest>(body, v).map(drop),
        ApiKey::EndTxn => decode_body::<EndTxnRequest>(body, v).map(drop),
        ApiKey::DescribeTransactions => decode_body::<DescribeTransactionsRequest>(body, v).map(drop),
        ApiKey::ListTransactions => decode_body::<ListTransactionsRequest>(body, v).map(drop),
        ApiKey::DescribeProducers => decode_body::<DescribeProducersRequest>(body, v).map(drop),
        ApiKey::WriteTxnMarkers => decode_body::<WriteTxnMarkersRequest>(body, v).map(drop),
        ApiKey::SaslHandshake => decode_body::<SaslHandshakeRequest>(body, v).map(drop),
        ApiKey::CreateAcls => decode_body::<CreateAclsRequest>(body, v).map(drop),
        ApiKey::DescribeAcls => decode_body::<DescribeAclsRequest>(body, v).map(drop),
        ApiKey::DeleteAcls => decode_body::<DeleteAclsRequest>(body, v).map(drop),
        ApiKey::DescribeClientQuotas => {
            decode_body::<DescribeClientQuotasRequest>(body, v).map(drop)
        }
        ApiKey::AlterClientQuotas => decode_body::<AlterClientQuotasRequest>(body, v).map(drop),
        ApiKey::SaslAuthenticate => decode_body::<SaslAuthenticateRequest>(body, v).map(drop),
        ApiKey::DescribeUserScramCredentials => {
            decode_body::<DescribeUserScramCredentialsRequest>(body, v).map(drop)
        }
        ApiKey::AlterUserScramCredentials => {
            decode_body::<AlterUserScramCredentialsRequest>(body, v).map(drop)
        }
        _ => Ok(()),
    };
});
