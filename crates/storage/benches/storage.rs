//! Criterion micro-benchmarks of the storage hot paths: append (which checks every record),
//! offset lookup plus read (which checks every served batch's CRC), that CRC check alone, and
//! reads by timestamp. Run with `cargo bench -p sluice-storage`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sluice_record::testing::build_batch;
use sluice_storage::{AppendOrigin, Log, LogConfig};
use std::hint::black_box;

/// A batch of `records` records of `value_bytes` bytes each.
fn batch(records: usize, value_bytes: usize) -> Vec<u8> {
    let value = vec![b'v'; value_bytes];
    let values: Vec<&[u8]> = (0..records).map(|_| value.as_slice()).collect();
    let stamps: Vec<i64> = (0..records as i64).map(|i| 1_700_000_000_000 + i).collect();
    build_batch(0, &stamps, &values)
}

fn filled_log(dir: &std::path::Path, batches: usize) -> Log {
    let mut log = Log::open(dir, LogConfig::default(), true, 0).expect("open");
    let b = batch(100, 100);
    for _ in 0..batches {
        log.append(&b, AppendOrigin::Client, 0).expect("append");
    }
    log
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for (records, value_bytes) in [(100, 100), (1000, 100), (16, 1024)] {
        let b = batch(records, value_bytes);
        group.throughput(Throughput::Bytes(100 * b.len() as u64));
        group.bench_function(format!("{records}x{value_bytes}B"), |bench| {
            bench.iter_batched_ref(
                || {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let log = Log::open(dir.path(), LogConfig::default(), true, 0).expect("open");
                    (dir, log)
                },
                |(_, log)| {
                    for _ in 0..100 {
                        log.append(black_box(&b), AppendOrigin::Client, 0)
                            .expect("append");
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = filled_log(dir.path(), 2000); // 200,000 records, about 22 MB
    let mut group = c.benchmark_group("read");
    group.bench_function("index lookup + 1 MiB read at a random offset", |bench| {
        let mut offset = 0i64;
        bench.iter(|| {
            offset = (offset + 7919) % 200_000;
            let plan = log.read(black_box(offset), 1 << 20, true).expect("plan");
            black_box(plan.read().expect("read"))
        })
    });
    // What a read pays to check what it serves: CRC-32C over the same 1 MiB (compare with the
    // read above, which includes it).
    let served = log
        .read(0, 1 << 20, true)
        .expect("plan")
        .read()
        .expect("read");
    group.throughput(Throughput::Bytes(served.len() as u64));
    group.bench_function("CRC-32C of every batch in a 1 MiB read", |bench| {
        bench.iter(|| {
            for batch in sluice_record::BatchIter::new(black_box(&served)) {
                let (_, bytes) = batch.expect("whole batches");
                black_box(sluice_record::verify_checksum(bytes).expect("valid"));
            }
        })
    });
    group.bench_function("offset for timestamp", |bench| {
        let mut ts = 0i64;
        bench.iter(|| {
            ts = (ts + 7) % 100;
            black_box(
                log.offset_for_timestamp(1_700_000_000_000 + ts)
                    .expect("lookup"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
