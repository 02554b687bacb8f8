//! Classifier cost: keyword fast path, parser path uncached (first sight of a shape) and
//! cached (digest hit).

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::router::{classify, Classifier};
use std::hint::black_box;

const FAST: &[(&str, &str)] = &[
    ("point_select", "SELECT c FROM sbtest1 WHERE id = 5012"),
    ("insert_3_rows", "INSERT INTO t (a, b, c) VALUES (1, 'x', 2.5), (2, 'y', 3.5), (3, 'z', 4.5)"),
    ("join", "SELECT a.x, b.y FROM a JOIN b ON a.id = b.a_id WHERE a.z > 10 AND b.w LIKE 'q%' ORDER BY a.x LIMIT 10"),
    ("locking_read", "SELECT * FROM accounts WHERE id = 7 FOR UPDATE"),
    ("set_names", "SET NAMES utf8mb4"),
];

const SLOW: &str = "WITH recent AS (SELECT id, total FROM orders WHERE created > '2026-01-01') SELECT COUNT(*) FROM recent WHERE total > 100";

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify");
    for (name, sql) in FAST {
        g.bench_function(format!("fast/{name}"), |b| {
            b.iter(|| classify(black_box(sql.as_bytes())))
        });
    }
    let big = format!(
        "INSERT INTO t VALUES {}",
        vec!["(1, 'abcdefghij', 3.25)"; 200].join(", ")
    );
    g.bench_function("fast/insert_4kb", |b| {
        b.iter(|| classify(black_box(big.as_bytes())))
    });
    let cl = Classifier::new();
    // the shape cache, bare and with a 120-byte sqlcommenter tag (ORMs, tracing libraries)
    let bare = "SELECT c FROM sbtest1 WHERE id = 5012";
    let tagged = format!(
        "{bare} /*controller='users',action='show',\
         traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/"
    );
    g.bench_function("shape_cache/point_select", |b| {
        b.iter(|| cl.classify(black_box(bare.as_bytes())))
    });
    g.bench_function("shape_cache/point_select_sqlcommenter", |b| {
        b.iter(|| cl.classify(black_box(tagged.as_bytes())))
    });
    g.bench_function("parser/cached", |b| {
        b.iter(|| cl.classify(black_box(SLOW.as_bytes())))
    });
    g.bench_function("parser/uncached", |b| {
        b.iter(|| {
            cl.clear_cache();
            cl.classify(black_box(SLOW.as_bytes()))
        })
    });
    g.finish();
}

criterion_group!(classify_benches, benches);
criterion_main!(classify_benches);
