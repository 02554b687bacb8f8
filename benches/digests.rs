//! Cost of recording one statement in the digest statistics (the hot path's share): a shape
//! already held, and the first sight of a shape in a full table (eviction).

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::stats::{context_of, Digests, Sample};
use std::hint::black_box;

fn sample(digest: u64) -> Sample<'static> {
    Sample {
        digest,
        context: context_of("app", Some("sbtest"), "db1", "read", None),
        user: "app",
        database: Some("sbtest"),
        backend: "db1",
        route: "read",
        rule: None,
        micros: 420,
        rows: 1,
        error: false,
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("digests");
    // room for all 5,000 shapes even where the hash puts more than the average in a shard
    let d = Digests::new(10_000);
    for i in 0..5_000u64 {
        d.record(&sample(i), || {
            format!("SELECT c FROM sbtest{i} WHERE id = ?")
        });
    }
    g.bench_function("record/held_shape", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 1) % 5_000;
            d.record(black_box(&sample(i)), || "evicted".to_string())
        })
    });
    g.bench_function("record/new_shape_full_table", |b| {
        let mut i = 1_000_000u64;
        b.iter(|| {
            i += 1;
            d.record(black_box(&sample(i)), || "SELECT ?".to_string())
        })
    });
    g.finish();
}

criterion_group!(all, benches);
criterion_main!(all);
