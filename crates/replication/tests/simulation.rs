//! The replication core under a seeded deterministic simulation (see `sim/`): three brokers
//! and a controller through dropped, delayed, duplicated and reordered messages, crashes that
//! lose unsynced tails, pauses, cut links and isolated brokers; every property in `sim/check.rs`
//! holds after every event, and the replicas converge once the faults heal.
//!
//! Seeds: `SLUICE_SIM_SEEDS=N` runs seeds 0..N (default 24, the CI set);
//! `SLUICE_SIM_SEED=S` runs seed S alone, with `SLUICE_SIM_TRACE=1` printing every event.
//! A failure names its seed, which replays it exactly.

mod sim;

use sim::cluster::{Mutations, Outcome, Sim, SimConfig};

const DEFAULT_SEEDS: u64 = 24;
/// Seeds each deliberate bug is given to show itself (the run stops at the first catch).
const MUTANT_SEEDS: u64 = 200;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

fn seeds() -> Vec<u64> {
    match env_u64("SLUICE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("SLUICE_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    }
}

/// Runs `seeds` on two threads (CI has two cores); each result with its seed.
fn run_all(seeds: &[u64], config: SimConfig) -> Vec<(u64, Result<Outcome, String>)> {
    let chunks: Vec<&[u64]> = seeds.chunks(seeds.len().div_ceil(2).max(1)).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|&seed| (seed, Sim::new(seed, config).run()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a simulation thread panicked"))
            .collect()
    })
}

#[test]
fn every_seed_keeps_every_property_and_converges() {
    let config = SimConfig {
        trace: std::env::var("SLUICE_SIM_TRACE").is_ok_and(|v| v == "1"),
        ..SimConfig::default()
    };
    let seeds = seeds();
    let started = std::time::Instant::now();
    let results = run_all(&seeds, config);
    let mut total = Outcome::default();
    let mut failures = Vec::new();
    for (seed, result) in results {
        match result {
            Ok(o) => {
                total.events += o.events;
                total.produced += o.produced;
                total.acked += o.acked;
                total.leaders += o.leaders;
                total.faults += o.faults;
            }
            Err(e) => failures.push(format!(
                "seed {seed}: {e}\n  replay: SLUICE_SIM_SEED={seed} SLUICE_SIM_TRACE=1 cargo test -p sluice-replication --test simulation every_seed"
            )),
        }
    }
    eprintln!(
        "replication simulation: {} seeds, {} events, {} batches produced, {} acknowledged, {} leaderships, {} faults, {} violations, {:.1} s",
        seeds.len(),
        total.events,
        total.produced,
        total.acked,
        total.leaders,
        total.faults,
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        total.acked > 0 && total.leaders > seeds.len(),
        "the runs did something"
    );
}

/// The checks catch each deliberate bug on some seed of a fixed set: a simulation that could
/// not fail would prove nothing. Seeds run two at a time, up to the first that catches it.
fn caught(mutations: Mutations) -> String {
    let config = SimConfig {
        mutations,
        ..SimConfig::default()
    };
    let seeds: Vec<u64> = (0..MUTANT_SEEDS).collect();
    for pair in seeds.chunks(2) {
        let failure = run_all(pair, config)
            .into_iter()
            .find_map(|(seed, r)| r.err().map(|e| format!("seed {seed}: {e}")));
        if let Some(failure) = failure {
            eprintln!("caught: {failure}");
            return failure;
        }
    }
    panic!("none of {MUTANT_SEEDS} seeds caught {mutations:?}");
}

#[test]
fn a_follower_reporting_offsets_before_fsync_is_caught() {
    caught(Mutations {
        report_before_fsync: true,
        ..Mutations::default()
    });
}

#[test]
fn an_unclean_election_is_caught() {
    caught(Mutations {
        unclean_election: true,
        ..Mutations::default()
    });
}

#[test]
fn a_restart_that_resumes_the_old_epoch_is_caught() {
    caught(Mutations {
        no_epoch_bump_on_restart: true,
        ..Mutations::default()
    });
}
