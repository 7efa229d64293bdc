//! `sluice_client::txn::TransactionalProducer` against the real broker (the `sluice` binary of
//! this build, started on a free loopback port): commits are seen by `read_committed` reads
//! with their offsets, aborts are not, and a newer producer of the same id fences the older.
//! The broker's transactions themselves are proven against librdkafka and the Java client in
//! the black-box suite; this proves the client crate drives them as those clients do.

use sluice_client::Client;
use sluice_client::data::{self, FetchOptions, Isolation};
use sluice_client::groups;
use sluice_client::txn::TransactionalProducer;
use std::collections::BTreeMap;
use std::time::Duration;

mod common;
use common::{records, start};

/// Every value a `read_committed` reader sees in `topic`-0 from offset 0.
async fn read_committed(client: &mut Client, topic: &str) -> Vec<String> {
    let options = FetchOptions {
        max_wait: Duration::from_millis(100),
        partition_max_bytes: 1 << 20,
        isolation: Isolation::ReadCommitted,
    };
    let fetched = data::fetch_many(client, &[(topic, 0, 0)], options)
        .await
        .expect("fetch");
    let f = fetched[0].result.as_ref().expect("partition fetched");
    let mut values = Vec::new();
    data::for_each_committed_record(&f.records, 0, &f.aborted, |r| {
        values.push(String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap());
    })
    .expect("records decode");
    values
}

#[tokio::test(flavor = "current_thread")]
async fn commits_are_seen_with_their_offsets_aborts_are_not_and_the_newest_producer_wins() {
    let server = start();
    let mut client = Client::connect(&server.address, "txn-test", Duration::from_secs(30))
        .await
        .expect("connects");
    client.partitions("ledger", true).await.expect("topic");

    let mut producer = TransactionalProducer::init(&mut client, "copier", Duration::from_secs(60))
        .await
        .expect("init");
    producer.begin();
    producer
        .send(&mut client, "ledger", 0, &records(&["a", "b"]))
        .await
        .expect("send");
    let offsets = BTreeMap::from([(("input".to_string(), 0), 42)]);
    producer
        .send_offsets(&mut client, "copiers", &offsets, None)
        .await
        .expect("offsets");
    producer.commit().await.expect("commit");

    producer.begin();
    producer
        .send(&mut client, "ledger", 0, &records(&["aborted"]))
        .await
        .expect("send");
    let later = BTreeMap::from([(("input".to_string(), 0), 99)]);
    producer
        .send_offsets(&mut client, "copiers", &later, None)
        .await
        .expect("offsets");
    producer.abort().await.expect("abort");

    producer.begin();
    producer
        .send(&mut client, "ledger", 0, &records(&["c"]))
        .await
        .expect("send");
    producer.commit().await.expect("commit");

    assert_eq!(read_committed(&mut client, "ledger").await, ["a", "b", "c"]);
    let committed = groups::committed_offsets(&mut client, "copiers", None)
        .await
        .expect("offsets");
    assert_eq!(committed.get(&("input".to_string(), 0)), Some(&42));

    // A newer producer of the same id fences the older one mid-transaction.
    producer.begin();
    producer
        .send(&mut client, "ledger", 0, &records(&["zombie"]))
        .await
        .expect("send");
    let mut successor = TransactionalProducer::init(&mut client, "copier", Duration::from_secs(60))
        .await
        .expect("successor");
    assert!(successor.epoch() > producer.epoch());
    let fenced = producer
        .send(&mut client, "ledger", 0, &records(&["late"]))
        .await
        .expect_err("the older producer is fenced");
    assert!(
        matches!(fenced.code(), Some(47 | 90)),
        "INVALID_PRODUCER_EPOCH or PRODUCER_FENCED, got {fenced}"
    );
    successor.begin();
    successor
        .send(&mut client, "ledger", 0, &records(&["d"]))
        .await
        .expect("send");
    successor.commit().await.expect("commit");
    assert_eq!(
        read_committed(&mut client, "ledger").await,
        ["a", "b", "c", "d"]
    );
}
