//! Routing rules' cost per statement: a shape-cached point select with no rules, and with
//! 100 rules that do not match it (50 `digest_pattern`, 50 `pattern`). The issue's bound:
//! at most 100 ns more than with no rules.

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::config::Config;
use sluice::router::Classifier;
use sluice::rules::{RuleSet, Subject};
use std::hint::black_box;

fn config(rules: usize) -> Config {
    let mut text = String::from(
        "[listen]\naddress='127.0.0.1:1'\n[admin]\naddress='127.0.0.1:2'\n[[users]]\nname='app'\npassword='b'\n\
         [[backends]]\nname='p'\naddress='127.0.0.1:3'\nrole='primary'\n\
         [[backends]]\nname='r'\naddress='127.0.0.1:4'\nrole='replica'\ngroups=['reporting']\n",
    );
    for i in 0..rules / 2 {
        text.push_str(&format!(
            "[[rules]]\nname='d{i}'\ndigest_pattern='^SELECT .* FROM report_{i}_'\nroute='group:reporting'\n\
             [[rules]]\nname='p{i}'\npattern='tenant_{i}_secret'\nreject='no'\n"
        ));
    }
    Config::parse(&text, "bench").unwrap()
}

fn benches(c: &mut Criterion) {
    let m = sluice::metrics::Metrics::new(&["p".into(), "r".into()]);
    let cl = Classifier::new();
    let sql = b"SELECT c FROM sbtest1 WHERE id = 5012";
    let mut g = c.benchmark_group("rules");
    for n in [0usize, 100] {
        let set =
            RuleSet::compile(&config(n), |b| ["p", "r"].iter().position(|x| *x == b), &m).unwrap();
        g.bench_function(format!("point_select/{n}_rules"), |b| {
            b.iter(|| {
                let (intent, shape) = cl.classify_shaped(black_box(sql));
                let s = Subject {
                    sql,
                    intent: &intent,
                    shape,
                    user: "app",
                    schema: Some("shop"),
                    client: None,
                };
                black_box(set.evaluate(&s))
            })
        });
    }
    g.finish();
}

criterion_group!(rules_benches, benches);
criterion_main!(rules_benches);
