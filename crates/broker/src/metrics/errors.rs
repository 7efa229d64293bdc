//! `ResponseErrors`: the Kafka error codes a response carries (at its top, per topic, per
//! partition, per member), so `sluice_errors_total{api, error}` counts each one, as Kafka's
//! `RequestMetrics` `ErrorsPerSec` does (every partition's error, not one per response).
//!
//! Owns: where each served API's response keeps its error codes. Not: what the codes mean.

use kafka_protocol::messages::*;

/// The error codes in a response, zeros included (the caller leaves them out).
pub(crate) trait ResponseErrors {
    fn error_codes(&self, out: &mut Codes<'_>);
}

/// Where a response's error codes go, one by one: counting them allocates nothing, as every
/// response passes through here.
pub(crate) struct Codes<'a>(pub &'a mut dyn FnMut(i16));

impl Codes<'_> {
    fn push(&mut self, code: i16) {
        (self.0)(code);
    }

    fn extend(&mut self, codes: impl IntoIterator<Item = i16>) {
        codes.into_iter().for_each(&mut *self.0);
    }
}

/// `impl ResponseErrors for $type` with the body given, `$r` the response and `$out` the list.
macro_rules! error_codes {
    ($type:ty, |$r:ident, $out:ident| $body:expr) => {
        impl ResponseErrors for $type {
            fn error_codes(&self, $out: &mut Codes<'_>) {
                let $r = self;
                $body
            }
        }
    };
}

error_codes!(ApiVersionsResponse, |r, out| out.push(r.error_code));
error_codes!(MetadataResponse, |r, out| {
    out.push(r.error_code);
    for t in &r.topics {
        out.push(t.error_code);
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(ProduceResponse, |r, out| {
    for t in &r.responses {
        out.extend(t.partition_responses.iter().map(|p| p.error_code));
    }
});
error_codes!(FetchResponse, |r, out| {
    out.push(r.error_code);
    for t in &r.responses {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(ListOffsetsResponse, |r, out| {
    for t in &r.topics {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(OffsetForLeaderEpochResponse, |r, out| {
    for t in &r.topics {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(CreateTopicsResponse, |r, out| out
    .extend(r.topics.iter().map(|t| t.error_code)));
error_codes!(DeleteTopicsResponse, |r, out| out
    .extend(r.responses.iter().map(|t| t.error_code)));
error_codes!(DeleteRecordsResponse, |r, out| {
    for t in &r.topics {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(CreatePartitionsResponse, |r, out| out
    .extend(r.results.iter().map(|t| t.error_code)));
error_codes!(DescribeConfigsResponse, |r, out| out
    .extend(r.results.iter().map(|t| t.error_code)));
error_codes!(AlterConfigsResponse, |r, out| out
    .extend(r.responses.iter().map(|t| t.error_code)));
error_codes!(IncrementalAlterConfigsResponse, |r, out| out
    .extend(r.responses.iter().map(|t| t.error_code)));
error_codes!(DescribeClusterResponse, |r, out| out.push(r.error_code));
error_codes!(DescribeLogDirsResponse, |r, out| {
    out.push(r.error_code);
    out.extend(r.results.iter().map(|d| d.error_code));
});
error_codes!(FindCoordinatorResponse, |r, out| {
    out.push(r.error_code);
    out.extend(r.coordinators.iter().map(|c| c.error_code));
});
error_codes!(JoinGroupResponse, |r, out| out.push(r.error_code));
error_codes!(ConsumerGroupHeartbeatResponse, |r, out| out
    .push(r.error_code));
error_codes!(ConsumerGroupDescribeResponse, |r, out| out
    .extend(r.groups.iter().map(|g| g.error_code)));
error_codes!(ShareGroupHeartbeatResponse, |r, out| out.push(r.error_code));
error_codes!(ShareGroupDescribeResponse, |r, out| out
    .extend(r.groups.iter().map(|g| g.error_code)));
error_codes!(ShareFetchResponse, |r, out| {
    out.push(r.error_code);
    for t in &r.responses {
        for p in &t.partitions {
            out.push(p.error_code);
            out.push(p.acknowledge_error_code);
        }
    }
});
error_codes!(ShareAcknowledgeResponse, |r, out| {
    out.push(r.error_code);
    for t in &r.responses {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(ReadShareGroupStateResponse, |r, out| {
    for t in &r.results {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(WriteShareGroupStateResponse, |r, out| {
    for t in &r.results {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(DescribeShareGroupOffsetsResponse, |r, out| {
    for g in &r.groups {
        out.push(g.error_code);
        for t in &g.topics {
            out.extend(t.partitions.iter().map(|p| p.error_code));
        }
    }
});
error_codes!(AlterShareGroupOffsetsResponse, |r, out| {
    out.push(r.error_code);
    for t in &r.responses {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(DeleteShareGroupOffsetsResponse, |r, out| {
    out.push(r.error_code);
    out.extend(r.responses.iter().map(|t| t.error_code));
});
error_codes!(DeleteShareGroupStateResponse, |r, out| {
    for t in &r.results {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(SyncGroupResponse, |r, out| out.push(r.error_code));
error_codes!(HeartbeatResponse, |r, out| out.push(r.error_code));
error_codes!(LeaveGroupResponse, |r, out| {
    out.push(r.error_code);
    out.extend(r.members.iter().map(|m| m.error_code));
});
error_codes!(OffsetCommitResponse, |r, out| {
    for t in &r.topics {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(OffsetFetchResponse, |r, out| {
    out.push(r.error_code);
    for t in &r.topics {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
    for g in &r.groups {
        out.push(g.error_code);
        for t in &g.topics {
            out.extend(t.partitions.iter().map(|p| p.error_code));
        }
    }
});
error_codes!(ListGroupsResponse, |r, out| out.push(r.error_code));
error_codes!(DescribeGroupsResponse, |r, out| out
    .extend(r.groups.iter().map(|g| g.error_code)));
error_codes!(DeleteGroupsResponse, |r, out| out
    .extend(r.results.iter().map(|g| g.error_code)));
error_codes!(OffsetDeleteResponse, |r, out| {
    out.push(r.error_code);
    for t in &r.topics {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(InitProducerIdResponse, |r, out| out.push(r.error_code));
error_codes!(AddPartitionsToTxnResponse, |r, out| {
    out.push(r.error_code);
    let topics = r
        .results_by_transaction
        .iter()
        .flat_map(|t| &t.topic_results)
        .chain(&r.results_by_topic_v3_and_below);
    for t in topics {
        out.extend(
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code),
        );
    }
});
error_codes!(EndTxnResponse, |r, out| out.push(r.error_code));
error_codes!(AddOffsetsToTxnResponse, |r, out| out.push(r.error_code));
error_codes!(TxnOffsetCommitResponse, |r, out| {
    for t in &r.topics {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(DescribeTransactionsResponse, |r, out| out
    .extend(r.transaction_states.iter().map(|t| t.error_code)));
error_codes!(ListTransactionsResponse, |r, out| out.push(r.error_code));
error_codes!(DescribeProducersResponse, |r, out| {
    for t in &r.topics {
        out.extend(t.partitions.iter().map(|p| p.error_code));
    }
});
error_codes!(WriteTxnMarkersResponse, |r, out| {
    for m in &r.markers {
        for t in &m.topics {
            out.extend(t.partitions.iter().map(|p| p.error_code));
        }
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_errors_are_found_where_they_sit() {
        let response = ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default().with_partition_responses(vec![
                produce_response::PartitionProduceResponse::default().with_error_code(0),
                produce_response::PartitionProduceResponse::default().with_error_code(6),
                produce_response::PartitionProduceResponse::default().with_error_code(6),
            ]),
        ]);
        let mut codes = Vec::new();
        response.error_codes(&mut Codes(&mut |c| codes.push(c)));
        assert_eq!(codes, vec![0, 6, 6]);
    }
}
error_codes!(SaslHandshakeResponse, |r, out| out.push(r.error_code));
error_codes!(SaslAuthenticateResponse, |r, out| out.push(r.error_code));
error_codes!(DescribeUserScramCredentialsResponse, |r, out| {
    out.push(r.error_code);
    out.extend(r.results.iter().map(|u| u.error_code));
});
error_codes!(AlterUserScramCredentialsResponse, |r, out| out
    .extend(r.results.iter().map(|u| u.error_code)));
error_codes!(CreateAclsResponse, |r, out| out
    .extend(r.results.iter().map(|a| a.error_code)));
error_codes!(DescribeAclsResponse, |r, out| out.push(r.error_code));
error_codes!(DescribeClientQuotasResponse, |r, out| out
    .push(r.error_code));
error_codes!(AlterClientQuotasResponse, |r, out| out
    .extend(r.entries.iter().map(|e| e.error_code)));
error_codes!(DeleteAclsResponse, |r, out| {
    for f in &r.filter_results {
        out.push(f.error_code);
        out.extend(f.matching_acls.iter().map(|a| a.error_code));
    }
});
