//! Any statement text: the lexer/classifier (and the parser path) never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sluice::router::classify(data);
    let c = sluice::router::Classifier::new();
    let _ = c.classify(data);
    let _ = sluice::router::classify::use_target(data);
    let _ = sluice::router::classify::kill_target(data);
});
