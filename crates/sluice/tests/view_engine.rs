//! The view engine's commit protocol against the real broker, with faults injected at every
//! step (docs/design/0004-views.md, "Exactly once"): the engine runs in this process against a
//! `sluice serve --views off`, crashes (an injected error drops all its in-memory state, as a
//! killed process loses it) after rows are sent, after offsets are sent, after the transaction
//! committed but before the checkpoint, and after the checkpoint; once more its checkpoint is
//! deleted; and the broker is killed with `kill -9` and restarted under it. Afterwards:
//!
//! - the view's rows equal a fold the test computes itself from what it produced;
//! - the output topic, read `read_committed`, holds no change twice: every published row of an
//!   account has a larger COUNT than the one before (a replay that published again would repeat
//!   one), and the latest per account is the oracle's.

use sluice_client::Client;
use sluice_client::admin::{self, NewTopic};
use sluice_client::data::{self, Acks, FetchOptions, Isolation};
use sluice_record::encode_records;
use sluice_view::engine::{self, CommitStep, EngineOptions, FaultHook, Live, Phase, ViewSpec};
use sluice_view::runtime::SourceKind;
use sluice_view::sql::{Plan, Statement, parse};
use sluice_view::state::{Checkpoint, Positions};
use sluice_view::value::{Decimal, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod common;

const ACCOUNTS: u64 = 7;
const ROUNDS: u64 = 12;
const PER_ROUND: u64 = 50;

const BALANCES: &str = "CREATE MATERIALIZED VIEW balances AS SELECT account, SUM(amount) AS balance, \
     COUNT(*) AS n FROM payments GROUP BY account";

fn spec() -> ViewSpec {
    view_spec(BALANCES)
}

fn view_spec(sql: &str) -> ViewSpec {
    let Statement::CreateView { name, plan, .. } = parse(sql).expect("parses") else {
        panic!("a view")
    };
    ViewSpec {
        output_topic: Some(name.clone()),
        name,
        plan: Plan::View(plan),
        source_topic: "payments".into(),
        source_kind: SourceKind::Stream,
        sql: sql.to_string(),
    }
}

/// Faults at commit steps: the n-th commit to reach a step named in the plan fails there.
fn faults(plan: Vec<(usize, CommitStep)>) -> (FaultHook, Arc<Mutex<Vec<CommitStep>>>) {
    let seen: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let fired: Arc<Mutex<Vec<CommitStep>>> = Arc::default();
    let fired_by_hook = Arc::clone(&fired);
    let hook: FaultHook = Arc::new(move |_view, step| {
        let mut seen = seen.lock().unwrap();
        let n = seen.entry(format!("{step:?}")).or_default();
        *n += 1;
        if plan.contains(&(*n, step)) {
            fired_by_hook.lock().unwrap().push(step);
            return Err(format!("crash after {step:?} (commit {n})"));
        }
        Ok(())
    });
    (hook, fired)
}

/// Produces one round of payments (cents: round * 1000 + i) with acks=all; returns them.
async fn produce_round(client: &mut Client, round: u64) -> Vec<(String, i64)> {
    let mut sent = Vec::new();
    for partition in 0..2 {
        let values: Vec<(String, i64)> = (0..PER_ROUND / 2)
            .map(|i| {
                let cents = (round * 1000 + i) as i64 + 1;
                (format!("a{}", (round + i + partition) % ACCOUNTS), cents)
            })
            .collect();
        let texts: Vec<String> = values
            .iter()
            .map(|(account, cents)| {
                format!(
                    r#"{{"account":"{account}","amount":{}.{:02}}}"#,
                    cents / 100,
                    cents % 100
                )
            })
            .collect();
        let records = common::records(&texts);
        let batch = bytes::Bytes::from(encode_records(&records));
        // A broker just restarted may not lead yet; what it refuses so was not written.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let sent = data::produce(
                client,
                "payments",
                partition as i32,
                batch.clone(),
                Acks::All,
            );
            match sent.await {
                Ok(_) => break,
                Err(e)
                    if (e.is_retriable() || e.is_connection_lost())
                        && tokio::time::Instant::now() < deadline =>
                {
                    client.forget_leaders();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("produce: {e}"),
            }
        }
        sent.extend(values);
    }
    sent
}

/// The latest value of every key and every value in order, of `balances` read_committed.
async fn output(
    client: &mut Client,
) -> (
    BTreeMap<String, serde_json::Value>,
    Vec<(String, serde_json::Value)>,
) {
    let options = FetchOptions {
        max_wait: Duration::from_millis(50),
        partition_max_bytes: 8 << 20,
        isolation: Isolation::ReadCommitted,
    };
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let fetched = data::fetch_many(client, &[("balances", 0, offset)], options)
            .await
            .expect("fetch");
        let f = fetched[0].result.as_ref().expect("fetched");
        let next = data::for_each_committed_record(&f.records, offset, &f.aborted, |r| {
            let key = String::from_utf8(r.key.unwrap_or_default().to_vec()).unwrap();
            let value = serde_json::from_slice(r.value.expect("no deletions here")).unwrap();
            all.push((key, value));
        })
        .expect("decodes");
        if next == offset {
            break;
        }
        offset = next;
    }
    let latest = all.iter().cloned().collect();
    (latest, all)
}

async fn wait_caught_up(live: &Live, ends: &BTreeMap<(String, i32), i64>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        {
            let state = live.lock();
            // Folded, published and checkpointed: a replay that published again would have
            // done so by now, before the next round's records could hide it in a new change.
            let caught_up = ends.iter().all(|(tp, end)| {
                state.positions.get(tp) == Some(end) && state.committed.get(tp) == Some(end)
            });
            if caught_up && state.phase == Phase::Running {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the view did not catch up: at {:?} ({:?}), wanted {ends:?}",
                state.positions,
                state.phase
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An engine at work on one spec against the test's broker, faults injected by `hook`.
struct EngineRun {
    spec: Arc<ViewSpec>,
    live: Arc<Live>,
    checkpoint: Arc<Checkpoint>,
    options: EngineOptions,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl EngineRun {
    fn start(spec: ViewSpec, server: &common::Server, hook: FaultHook) -> EngineRun {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = Arc::new(Checkpoint::open(&dir.path().join("views.redb")).unwrap());
        let spec = Arc::new(spec);
        let live = Live::new(&spec);
        let options = EngineOptions {
            security: Default::default(),
            bootstrap: server.address.clone(),
            commit_interval: Duration::from_millis(20),
            faults: Some(hook),
        };
        let stop = CancellationToken::new();
        let task = Self::spawn(&spec, &live, &checkpoint, &options, &stop);
        EngineRun {
            spec,
            live,
            checkpoint,
            options,
            stop,
            task,
            _dir: dir,
        }
    }

    fn spawn(
        spec: &Arc<ViewSpec>,
        live: &Arc<Live>,
        checkpoint: &Arc<Checkpoint>,
        options: &EngineOptions,
        stop: &CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(engine::run(
            Arc::clone(spec),
            Arc::clone(live),
            Arc::clone(checkpoint),
            options.clone(),
            stop.clone(),
        ))
    }

    /// Stops the engine, deletes its checkpoint and starts it again: it rebuilds its state.
    async fn restart_without_checkpoint(&mut self) {
        self.halt().await;
        self.checkpoint.forget(&self.spec.name).unwrap();
        self.resume();
    }

    /// Stops the engine and starts one of `spec` on the same checkpoint, faults by `hook`.
    async fn restart_as(&mut self, spec: ViewSpec, hook: FaultHook) {
        self.halt().await;
        self.spec = Arc::new(spec);
        self.live = Live::new(&self.spec);
        self.options.faults = Some(hook);
        self.resume();
    }

    async fn halt(&mut self) {
        self.stop.cancel();
        (&mut self.task).await.unwrap();
    }

    /// Starts the engine again (after `halt`).
    fn resume(&mut self) {
        self.stop = CancellationToken::new();
        self.task = Self::spawn(
            &self.spec,
            &self.live,
            &self.checkpoint,
            &self.options,
            &self.stop,
        );
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// `ROUNDS` rounds of payments (`produce_round`), each folded in before the next; the broker
/// killed and restarted after a third of them, the engine's checkpoint deleted after half.
/// `each` sees every round's payments.
async fn payment_rounds(
    server: &mut common::Server,
    client: &mut Client,
    run: &mut EngineRun,
    mut each: impl FnMut(Vec<(String, i64)>),
) {
    let mut ends = BTreeMap::new();
    for round in 0..ROUNDS {
        each(produce_round(client, round).await);
        for partition in 0..2 {
            let end = (round + 1) * PER_ROUND / 2;
            ends.insert(("payments".to_string(), partition), end as i64);
        }
        wait_caught_up(&run.live, &ends).await;
        if round == ROUNDS / 3 {
            // The broker killed under the running engine: it reconnects and recovers.
            server.kill_and_restart();
            client
                .reconnect()
                .await
                .expect("the test's client reconnects");
        }
        if round == ROUNDS / 2 {
            run.restart_without_checkpoint().await;
        }
    }
    wait_caught_up(&run.live, &ends).await;
}

/// Creates topics: name, partitions, compacted?
async fn create_topics(client: &mut Client, topics: &[(&str, i32, bool)]) {
    for (name, partitions, compacted) in topics {
        let topic = NewTopic {
            name: name.to_string(),
            partitions: Some(*partitions),
            replication_factor: None,
            configs: if *compacted {
                vec![("cleanup.policy".to_string(), "compact".to_string())]
            } else {
                Vec::new()
            },
        };
        admin::create_topic(client, &topic).await.expect("topic");
    }
}

/// A client of `server`, and the topics of the balances view: `payments` (2 partitions) and
/// its compacted output topic.
async fn balances_topics(server: &common::Server, client_id: &str) -> Client {
    let mut client = Client::connect(&server.address, client_id, Duration::from_secs(30))
        .await
        .expect("connects");
    create_topics(
        &mut client,
        &[("payments", 2, false), ("balances", 1, true)],
    )
    .await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_every_commit_step_publish_each_change_once_and_lose_none() {
    let mut server = common::start_with(&["--views", "off"]);
    let mut client = balances_topics(&server, "view-test").await;
    // Each step's count is of the commits that reached it: commit 2 fails after its rows,
    // commit 3 after its offsets, 4 after EndTxn, 5 after the checkpoint, 6 after EndTxn again.
    let plan = vec![
        (2, CommitStep::RowsSent),
        (2, CommitStep::OffsetsSent),
        (2, CommitStep::Committed),
        (2, CommitStep::Checkpointed),
        (4, CommitStep::Committed),
    ];
    let (hook, fired) = faults(plan.clone());
    let mut run = EngineRun::start(spec(), &server, hook);
    let mut oracle: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    payment_rounds(&mut server, &mut client, &mut run, |sent| {
        for (account, cents) in sent {
            let entry = oracle.entry(account).or_default();
            entry.0 += cents;
            entry.1 += 1;
        }
    })
    .await;

    let expected: BTreeMap<String, (Value, Value)> = oracle
        .iter()
        .map(|(account, (cents, n))| {
            let balance = Value::from_decimal(Decimal::new(i128::from(*cents), 2));
            (account.clone(), (balance, Value::Int(*n)))
        })
        .collect();
    let rows = run.live.lock().state.rows().unwrap();
    let got: BTreeMap<String, (Value, Value)> = rows
        .into_iter()
        .map(|r| {
            let Value::Text(account) = r[0].clone() else {
                panic!("a text key")
            };
            (account, (r[1].clone(), r[2].clone()))
        })
        .collect();
    assert_eq!(got, expected, "the view's rows are the oracle's fold");

    // Every change reaches the output topic once: a published count never repeats or falls.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (latest, all) = output(&mut client).await;
        let mut last_n: BTreeMap<&str, i64> = BTreeMap::new();
        for (account, row) in &all {
            let n = row["n"].as_i64().expect("a count");
            let before = last_n.insert(account, n);
            assert!(
                before.is_none_or(|b| b < n),
                "{account}'s row was published twice or went back: count {before:?} then {n}"
            );
        }
        let published: BTreeMap<String, i64> = latest
            .iter()
            .map(|(k, v)| (k.clone(), v["n"].as_i64().unwrap()))
            .collect();
        let wanted: BTreeMap<String, i64> =
            oracle.iter().map(|(k, (_, n))| (k.clone(), *n)).collect();
        if published == wanted {
            for (account, row) in &latest {
                let text = row["balance"].to_string();
                let cents = oracle[account].0;
                assert_eq!(
                    Decimal::parse(&text).unwrap(),
                    Decimal::new(i128::from(cents), 2),
                    "{account}'s published balance"
                );
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the output topic's latest rows {published:?} are not the oracle's {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fired.lock().unwrap().len(),
        plan.len(),
        "every planned fault fired"
    );
    run.stop().await;
}

/// Every committed record of `topic`'s `partitions`, by partition, in offset order.
async fn committed_records(
    client: &mut Client,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, Vec<serde_json::Value>> {
    let options = FetchOptions {
        max_wait: Duration::from_millis(50),
        partition_max_bytes: 8 << 20,
        isolation: Isolation::ReadCommitted,
    };
    let mut out = BTreeMap::new();
    for partition in 0..partitions {
        let mut values = Vec::new();
        let mut offset = 0;
        loop {
            let fetched = data::fetch_many(client, &[(topic, partition, offset)], options)
                .await
                .expect("fetch");
            let f = fetched[0].result.as_ref().expect("fetched");
            let next = data::for_each_committed_record(&f.records, offset, &f.aborted, |r| {
                values.push(serde_json::from_slice(r.value.expect("a value")).unwrap());
            })
            .expect("decodes");
            if next == offset {
                break;
            }
            offset = next;
        }
        out.insert(partition, values);
    }
    out
}

/// A pipeline (`CREATE STREAM ... WHERE`) through a crash after each commit step, a deleted
/// checkpoint and a broker `kill -9`: its topic holds each passing record once, in its
/// partition's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_writes_each_record_once_through_crashes() {
    let mut server = common::start_with(&["--views", "off"]);
    let mut client = Client::connect(&server.address, "stream-test", Duration::from_secs(30))
        .await
        .expect("connects");
    create_topics(&mut client, &[("payments", 2, false), ("big", 2, false)]).await;
    let sql = "CREATE STREAM big AS SELECT account, amount FROM payments WHERE amount >= 5";
    let Statement::CreateStream { name, plan } = parse(sql).expect("parses") else {
        panic!("a stream")
    };
    let spec = ViewSpec {
        output_topic: Some(name.clone()),
        name,
        plan: Plan::Stream(plan),
        source_topic: "payments".into(),
        source_kind: SourceKind::Stream,
        sql: sql.to_string(),
    };
    let plan = vec![
        (2, CommitStep::RowsSent),
        (2, CommitStep::OffsetsSent),
        (2, CommitStep::Committed),
        (2, CommitStep::Checkpointed),
    ];
    let (hook, fired) = faults(plan.clone());
    let mut run = EngineRun::start(spec, &server, hook);
    let mut expected: BTreeMap<i32, Vec<serde_json::Value>> = BTreeMap::new();
    payment_rounds(&mut server, &mut client, &mut run, |sent| {
        // produce_round writes its first half to partition 0, the second to 1.
        for (i, (account, cents)) in sent.iter().enumerate() {
            if *cents >= 500 {
                let partition = (i as u64 >= PER_ROUND / 2) as i32;
                let amount = format!("{}.{:02}", cents / 100, cents % 100);
                let value = serde_json::json!({
                    "account": account,
                    "amount": serde_json::from_str::<serde_json::Value>(&amount).unwrap(),
                });
                expected.entry(partition).or_default().push(value);
            }
        }
    })
    .await;
    let written = committed_records(&mut client, "big", 2).await;
    assert_eq!(written, expected, "each passing record once, in order");
    assert_eq!(fired.lock().unwrap().len(), plan.len(), "every fault fired");
    run.stop().await;
}

/// Every committed record of a view's output topic from `from` on: key and row (`None`: a
/// tombstone), in offset order; and the offset after them.
async fn output_from(
    client: &mut Client,
    topic: &str,
    from: i64,
) -> (Vec<(String, Option<serde_json::Value>)>, i64) {
    let options = FetchOptions {
        max_wait: Duration::from_millis(50),
        partition_max_bytes: 8 << 20,
        isolation: Isolation::ReadCommitted,
    };
    let mut all = Vec::new();
    let mut offset = from;
    loop {
        let fetched = data::fetch_many(client, &[(topic, 0, offset)], options)
            .await
            .expect("fetch");
        let f = fetched[0].result.as_ref().expect("fetched");
        let next = data::for_each_committed_record(&f.records, offset, &f.aborted, |r| {
            let key = String::from_utf8(r.key.unwrap_or_default().to_vec()).unwrap();
            let row = r.value.map(|v| serde_json::from_slice(v).unwrap());
            all.push((key, row));
        })
        .expect("decodes");
        if next == offset {
            return (all, offset);
        }
        offset = next;
    }
}

/// `produce_round`, and where the source ends after it.
async fn round_of_payments(
    client: &mut Client,
    round: u64,
    ends: &mut Positions,
) -> Vec<(String, i64)> {
    let sent = produce_round(client, round).await;
    for partition in 0..2 {
        let end = ((round + 1) * PER_ROUND / 2) as i64;
        ends.insert(("payments".to_string(), partition), end);
    }
    sent
}

/// Payments whose amount falls in the replacing definition's band (cents 2023 to 3002).
const REPLACED: &str = "CREATE MATERIALIZED VIEW balances AS SELECT account, MAX(amount) AS top, \
     COUNT(*) AS n FROM payments WHERE amount >= 20.23 AND amount <= 30.02 GROUP BY account";

/// A view whose checkpoint is of another definition of its name (what a `CREATE OR REPLACE`
/// leaves when it stops between the catalog and the checkpoint): the engine folds the new one
/// from the source's start and publishes the difference from the old rows (changed rows, and
/// tombstones for the accounts the new one lacks) with its offsets in one transaction, through
/// a crash after each step of that commit; then it goes on as usual. The output topic ends on
/// the new definition's rows, and from the switch on no record repeats the one before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_definition_publishes_its_difference_once_through_crashes() {
    let server = common::start_with(&["--views", "off"]);
    let mut client = balances_topics(&server, "replace-test").await;
    let (no_faults, _) = faults(Vec::new());
    let mut run = EngineRun::start(spec(), &server, no_faults);
    let mut payments = Vec::new();
    let mut ends = BTreeMap::new();
    for round in 0..3 {
        payments.extend(round_of_payments(&mut client, round, &mut ends).await);
    }
    wait_caught_up(&run.live, &ends).await;
    let (_, switched_at) = output_from(&mut client, "balances", 0).await;

    let plan = vec![
        (1, CommitStep::RowsSent),
        (1, CommitStep::OffsetsSent),
        (1, CommitStep::Committed),
        (1, CommitStep::Checkpointed),
    ];
    let (hook, fired) = faults(plan.clone());
    run.restart_as(view_spec(REPLACED), hook).await;
    wait_caught_up(&run.live, &ends).await;
    payments.extend(round_of_payments(&mut client, 3, &mut ends).await);
    wait_caught_up(&run.live, &ends).await;

    let mut oracle: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (account, cents) in &payments {
        if (2023..=3002).contains(cents) {
            let entry = oracle.entry(account.clone()).or_default();
            entry.0 = entry.0.max(*cents);
            entry.1 += 1;
        }
    }
    assert!(
        oracle.len() < ACCOUNTS as usize && !oracle.is_empty(),
        "the new definition keeps some accounts and drops others: {oracle:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (all, _) = output_from(&mut client, "balances", 0).await;
        let latest: BTreeMap<String, Option<serde_json::Value>> = all.iter().cloned().collect();
        let shown: BTreeMap<String, (f64, i64)> = latest
            .iter()
            .filter_map(|(k, row)| row.as_ref().map(|r| (k, r)))
            .map(|(k, r)| {
                let top = r["top"].as_f64().expect("a MAX");
                (k.clone(), (top, r["n"].as_i64().expect("a COUNT")))
            })
            .collect();
        let wanted: BTreeMap<String, (f64, i64)> = oracle
            .iter()
            .map(|(k, (cents, n))| (k.clone(), (*cents as f64 / 100.0, *n)))
            .collect();
        if shown == wanted {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the output topic shows {shown:?}, not the new definition's {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // From the switch on, each key's records each say something new: a difference published
    // again after a crash would repeat a row (or a tombstone).
    let (after, _) = output_from(&mut client, "balances", switched_at).await;
    let mut last: BTreeMap<&str, &Option<serde_json::Value>> = BTreeMap::new();
    for (key, row) in &after {
        let before = last.insert(key, row);
        assert!(
            before != Some(row),
            "{key}'s {row:?} was published twice since the switch: {after:?}"
        );
    }
    let tombstoned = after.iter().filter(|(_, row)| row.is_none()).count();
    assert_eq!(
        tombstoned,
        ACCOUNTS as usize - oracle.len(),
        "one tombstone for each account the new definition lacks: {after:?}"
    );
    assert_eq!(
        fired.lock().unwrap().len(),
        plan.len(),
        "every planned fault fired"
    );
    run.stop().await;
}
