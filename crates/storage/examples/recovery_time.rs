//! How long a log takes to open after a crash, with its leader-epoch cache and without it
//! (rebuilt from every batch header), for the replica-ready storage figures.
//!
//! Writes a log of `SIZE_MIB` (default 1024) in batches of 16 records of 1,000 bytes (about
//! 16 KiB, a typical producer batch), in three leader epochs, then drops it without a clean
//! shutdown or a recovery-point checkpoint, so that opening verifies every batch; then opens
//! it again without `leader-epoch-checkpoint`. Each open is timed `RUNS` times (default 3) and
//! the median printed. With `cold` (and the right to write `/proc/sys/vm/drop_caches`) the
//! page cache is dropped before each open, so the disk is read; otherwise it is warm (the log
//! was just written) and the figures are CPU and memory bandwidth.
//!
//! `cargo run --release -p sluice-storage --example recovery_time -- [SIZE_MIB] [DIR] [RUNS] [cold]`

use sluice_record::testing::build_batch;
use sluice_storage::{AppendOrigin, Log, LogConfig};
use std::path::Path;
use std::time::Instant;

const RECORDS_PER_BATCH: usize = 16;
const RECORD_BYTES: usize = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let size_mib: u64 = args.get(1).map_or(Ok(1024), |s| s.parse())?;
    let scratch = tempfile::tempdir()?;
    let dir = args
        .get(2)
        .map_or(scratch.path().join("log"), |d| Path::new(d).join("log"));
    let runs: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    let cold = args.get(4).is_some_and(|a| a == "cold");
    let config = LogConfig::default();
    let batches = write_log(&dir, &config, size_mib)?;
    let mut cache = if cold { "cold" } else { "warm" };
    let mut open = |lose_cache| {
        if cold && !drop_page_cache() {
            cache = "warm (could not drop it)";
        }
        open_after_crash(&dir, &config, lose_cache)
    };
    let with_cache = median(runs, || open(false))?;
    let without_cache = median(runs, || open(true))?;
    println!(
        "recovery of {size_mib} MiB ({batches} batches, every batch verified, page cache {cache}): with the epoch cache {:.2} s, without it (rebuilt from the headers) {:.2} s (medians of {runs})",
        with_cache, without_cache
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Writes the log; returns how many batches it holds.
fn write_log(
    dir: &Path,
    config: &LogConfig,
    size_mib: u64,
) -> Result<u64, Box<dyn std::error::Error>> {
    let _ = std::fs::remove_dir_all(dir);
    let mut log = Log::open(dir, config.clone(), false, 0)?;
    let value = vec![b'x'; RECORD_BYTES];
    let values: Vec<&[u8]> = (0..RECORDS_PER_BATCH).map(|_| value.as_slice()).collect();
    let batch = build_batch(0, &[1_000; RECORDS_PER_BATCH], &values);
    let total = size_mib << 20;
    let count = total / batch.len() as u64;
    for i in 0..count {
        if i % (count / 3).max(1) == 0 {
            log.become_leader(log.leader_epoch() + 1)?;
        }
        log.append(&batch, AppendOrigin::Client, 1_000)?;
    }
    if let Some(plan) = log.flush_plan() {
        plan.execute()?;
        log.mark_flushed(&plan, 0);
    }
    // Dropped without `checkpoint`: no recovery point on disk, so opening verifies it all.
    Ok(count)
}

fn open_after_crash(
    dir: &Path,
    config: &LogConfig,
    lose_cache: bool,
) -> Result<f64, Box<dyn std::error::Error>> {
    let recovery_point = dir.join("recovery-point");
    let _ = std::fs::remove_file(&recovery_point);
    if lose_cache {
        let _ = std::fs::remove_file(dir.join("leader-epoch-checkpoint"));
    }
    let started = Instant::now();
    let log = Log::open(dir, config.clone(), false, 0)?;
    let took = started.elapsed().as_secs_f64();
    assert!(log.epoch_entries().len() >= 3, "the epochs are known");
    Ok(took)
}

/// Writes back and drops the page cache; false if this process may not.
fn drop_page_cache() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn median(
    runs: usize,
    mut run: impl FnMut() -> Result<f64, Box<dyn std::error::Error>>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut times = (0..runs.max(1))
        .map(|_| run())
        .collect::<Result<Vec<f64>, _>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
