//! Property tests: the classifier and the packet helpers never panic on arbitrary input,
//! and keep their invariants.

use proptest::prelude::*;
use sluice::protocol::{lenenc, reply, stmt};
use sluice::router::{classify, Kind};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn classify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = classify(&bytes);
    }

    #[test]
    fn classify_sqlish_never_panics(s in "[ -~\\n]{0,200}") {
        let a = classify(s.as_bytes());
        let b = classify(s.as_bytes());
        prop_assert_eq!(a, b, "deterministic");
    }

    #[test]
    fn literal_values_do_not_change_the_digest(a in any::<i64>(), b in any::<i64>(), s in "[a-z]{0,20}") {
        let x = classify(format!("SELECT c FROM t WHERE id = {a} AND n = '{s}'").as_bytes());
        let y = classify(format!("SELECT c FROM t WHERE id = {b} AND n = 'zz{s}'").as_bytes());
        prop_assert_eq!(x.digest, y.digest);
        prop_assert_eq!(x.kind, Kind::Read);
    }

    #[test]
    fn writes_are_never_reads(table in "[a-z]{1,10}", v in any::<u32>()) {
        for sql in [format!("INSERT INTO {table} VALUES ({v})"), format!("UPDATE {table} SET a = {v}"), format!("DELETE FROM {table}")] {
            prop_assert_ne!(classify(sql.as_bytes()).kind, Kind::Read);
        }
    }

    #[test]
    fn lenenc_roundtrip(v in any::<u64>()) {
        let mut out = Vec::new();
        lenenc::write_int(&mut out, v);
        let mut pos = 0;
        prop_assert_eq!(lenenc::read_int(&out, &mut pos), Some(v));
        prop_assert_eq!(pos, out.len());
    }

    #[test]
    fn packet_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), params in 0u16..20) {
        let _ = reply::parse_ok(&bytes);
        let _ = reply::parse_err(&bytes);
        let _ = reply::parse_eof(&bytes);
        let mut pos = 0;
        let _ = lenenc::read_str(&bytes, &mut pos);
        let _ = stmt::rewrite(&bytes, params, 7, &mut Some(vec![8, 0]), &mut Vec::new());
    }

    #[test]
    fn ok_packets_roundtrip(a in any::<u64>(), id in any::<u64>(), st in any::<u16>(), w in any::<u16>()) {
        let p = reply::ok(a, id, st, w);
        let ok = reply::parse_ok(&p).unwrap();
        prop_assert_eq!((ok.affected_rows, ok.last_insert_id, ok.status, ok.warnings), (a, id, st, w));
    }
}
