//! Consumer group figures: how long a group of members takes to settle after the last one
//! joins (classic and KIP-848 protocols), and how many offset commits per second the broker
//! sustains from a group's members.

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// Longest any group measurement may take before it counts as a failure.
const DEADLINE: Duration = Duration::from_secs(90);

/// How members commit while commit throughput is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStyle {
    /// `commitSync`: one commit in flight per member.
    Sync,
    /// Asynchronous commits, up to `PIPELINED_COMMITS_PER_MEMBER` in flight per member, their
    /// answers counted through librdkafka's commit queue API (`rd_kafka_commit_queue`), which
    /// the safe `rdkafka` API does not expose.
    Pipelined,
}

/// Commits in flight per member in `CommitStyle::Pipelined`.
const PIPELINED_COMMITS_PER_MEMBER: u64 = 16;

/// Counts the group's answered and failed commits.
#[derive(Default, Clone)]
struct CommitCounter {
    done: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

fn member(bootstrap: &str, group: &str, protocol: &str) -> anyhow::Result<BaseConsumer> {
    let mut config = crate::security::client_config(bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("group.protocol", protocol);
    if protocol == "classic" {
        config.set("session.timeout.ms", "10000");
    }
    Ok(config.create()?)
}

fn offsets_at(
    topic: &str,
    mine: &TopicPartitionList,
    n: u64,
) -> anyhow::Result<TopicPartitionList> {
    let mut offsets = TopicPartitionList::new();
    for e in mine.elements() {
        offsets.add_partition_offset(topic, e.partition(), Offset::Offset(n as i64))?;
    }
    Ok(offsets)
}

fn commit_sync(
    c: &BaseConsumer,
    topic: &str,
    mine: &TopicPartitionList,
    stop: Instant,
    counter: &CommitCounter,
) -> anyhow::Result<u64> {
    let mut sent = 0u64;
    while Instant::now() < stop {
        sent += 1;
        match c.commit(&offsets_at(topic, mine, sent)?, CommitMode::Sync) {
            Ok(()) => counter.done.fetch_add(1, Ordering::Relaxed),
            Err(_) => counter.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
    Ok(sent)
}

/// Per-member tally the commit callback updates.
#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    failed: AtomicU64,
}

unsafe extern "C" fn on_commit(
    _rk: *mut rdkafka_sys::rd_kafka_t,
    err: rdkafka_sys::rd_kafka_resp_err_t,
    _offsets: *mut rdkafka_sys::rd_kafka_topic_partition_list_t,
    opaque: *mut std::ffi::c_void,
) {
    // SAFETY: `opaque` is the `Tally` that `commit_pipelined` keeps alive until every
    // commit it sent has been answered or its queue destroyed.
    let tally = unsafe { &*(opaque as *const Tally) };
    tally.answered.fetch_add(1, Ordering::Relaxed);
    if err != rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        tally.failed.fetch_add(1, Ordering::Relaxed);
    }
}

fn commit_pipelined(
    c: &BaseConsumer,
    topic: &str,
    mine: &TopicPartitionList,
    stop: Instant,
    counter: &CommitCounter,
) -> anyhow::Result<u64> {
    let tally = Box::new(Tally::default());
    let opaque = &*tally as *const Tally as *mut std::ffi::c_void;
    let rk = c.client().native_ptr();
    // SAFETY: the queue belongs to this live consumer and is destroyed below, after the
    // drain; the tally outlives it.
    let queue = unsafe { rdkafka_sys::rd_kafka_queue_new(rk) };
    anyhow::ensure!(!queue.is_null(), "no commit queue");
    let mut sent = 0u64;
    let mut counted = 0u64;
    let drain_deadline = stop + Duration::from_secs(30);
    loop {
        let answered = tally.answered.load(Ordering::Relaxed);
        let now = Instant::now();
        if now >= stop && answered == sent || now >= drain_deadline {
            break;
        }
        if now < stop && sent - answered < PIPELINED_COMMITS_PER_MEMBER {
            sent += 1;
            let offsets = offsets_at(topic, mine, sent)?;
            // SAFETY: `offsets` lives across the call, which copies it.
            let err = unsafe {
                rdkafka_sys::rd_kafka_commit_queue(
                    rk,
                    offsets.ptr(),
                    queue,
                    Some(on_commit),
                    opaque,
                )
            };
            anyhow::ensure!(
                err == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
                "commit refused locally: {err:?}"
            );
            continue;
        }
        // SAFETY: the queue is live.
        unsafe { rdkafka_sys::rd_kafka_queue_poll_callback(queue, 1) };
        let newly = tally.answered.load(Ordering::Relaxed) - counted;
        counted += newly;
        counter.done.fetch_add(newly, Ordering::Relaxed);
    }
    let newly = tally.answered.load(Ordering::Relaxed) - counted;
    counter.done.fetch_add(newly, Ordering::Relaxed);
    counter
        .failed
        .fetch_add(tally.failed.load(Ordering::Relaxed), Ordering::Relaxed);
    // SAFETY: created above; nothing uses it after this.
    unsafe { rdkafka_sys::rd_kafka_queue_destroy(queue) };
    drop(tally);
    Ok(sent)
}

/// What one settle run measured.
pub struct Settled {
    /// From the last member's subscribe to every member holding its share.
    pub after_last_join: Duration,
}

/// Starts `members` consumers of one new group on `topic` (which has `partitions`
/// partitions) at once and times how long after the last one subscribed every member holds
/// an even share. Then, if `commits` is set, every member commits its partitions'
/// offsets for that long; returns the commits per second answered.
pub fn settle_and_commit(
    bootstrap: &str,
    topic: &str,
    partitions: usize,
    members: usize,
    protocol: &str,
    commits: Option<(u64, CommitStyle)>,
) -> anyhow::Result<(Settled, Option<f64>)> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let group = format!("bench-{protocol}-{}-{run}", std::process::id());
    let share = partitions / members;
    let owned: Arc<Mutex<Vec<BTreeSet<i32>>>> =
        Arc::new(Mutex::new(vec![BTreeSet::new(); members]));
    let last_join: Arc<Mutex<Option<Instant>>> = Arc::default();
    let start = Arc::new(Barrier::new(members));
    let settled_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let commit_start = Arc::new(Barrier::new(members + 1));
    let stop_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let counter = CommitCounter::default();
    let threads: Vec<_> = (0..members)
        .map(|i| {
            let (owned, last_join, start) = (owned.clone(), last_join.clone(), start.clone());
            let (settled_at, commit_start, stop_at) =
                (settled_at.clone(), commit_start.clone(), stop_at.clone());
            let (bootstrap, topic, group, protocol, counter) = (
                bootstrap.to_owned(),
                topic.to_owned(),
                group.clone(),
                protocol.to_owned(),
                counter.clone(),
            );
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let c = member(&bootstrap, &group, &protocol)?;
                start.wait();
                c.subscribe(&[&topic])?;
                *last_join.lock().expect("lock") = Some(Instant::now());
                let deadline = Instant::now() + DEADLINE;
                while settled_at.lock().expect("lock").is_none() {
                    anyhow::ensure!(Instant::now() < deadline, "group did not settle");
                    let _ = c.poll(Duration::from_millis(5));
                    let mine: BTreeSet<i32> = c
                        .assignment()?
                        .elements()
                        .iter()
                        .map(|e| e.partition())
                        .collect();
                    let mut all = owned.lock().expect("lock");
                    all[i] = mine;
                    let union: BTreeSet<i32> = all.iter().flatten().copied().collect();
                    if all.iter().all(|o| o.len() == share) && union.len() == partitions {
                        settled_at
                            .lock()
                            .expect("lock")
                            .get_or_insert_with(Instant::now);
                    }
                }
                let Some((_, style)) = commits else {
                    return Ok(0);
                };
                commit_start.wait();
                let stop = stop_at
                    .lock()
                    .expect("lock")
                    .expect("set before the barrier");
                let mine = c.assignment()?;
                let sent = match style {
                    CommitStyle::Sync => commit_sync(&c, &topic, &mine, stop, &counter)?,
                    CommitStyle::Pipelined => commit_pipelined(&c, &topic, &mine, stop, &counter)?,
                };
                Ok(sent)
            })
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    while settled_at.lock().expect("lock").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let settled = settled_at
        .lock()
        .expect("lock")
        .ok_or_else(|| anyhow::anyhow!("group did not settle"))?;
    let joined = last_join
        .lock()
        .expect("lock")
        .expect("every member subscribed");
    let mut commits_per_s = None;
    if let Some((seconds, _)) = commits {
        let window = Duration::from_secs(seconds);
        *stop_at.lock().expect("lock") = Some(Instant::now() + window);
        let before = counter.done.load(Ordering::Relaxed);
        let began = Instant::now();
        commit_start.wait();
        std::thread::sleep(window);
        let answered = counter.done.load(Ordering::Relaxed) - before;
        commits_per_s = Some(answered as f64 / began.elapsed().as_secs_f64());
    }
    let mut sent = 0;
    for t in threads {
        sent += t
            .join()
            .map_err(|_| anyhow::anyhow!("member thread panicked"))??;
    }
    anyhow::ensure!(
        commits.is_none() || counter.done.load(Ordering::Relaxed) == sent,
        "{sent} commits sent, {} answered",
        counter.done.load(Ordering::Relaxed)
    );
    anyhow::ensure!(
        counter.failed.load(Ordering::Relaxed) == 0,
        "{} commits failed",
        counter.failed.load(Ordering::Relaxed)
    );
    Ok((
        Settled {
            after_last_join: settled.saturating_duration_since(joined),
        },
        commits_per_s,
    ))
}
