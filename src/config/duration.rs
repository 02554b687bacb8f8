//! Human-readable durations in config: a number and a unit, or several ("500ms", "2s",
//! "1m30s", "1.5h"); units `us`, `ms`, `s`, `m`, `h`, `d`; at most 30 days (a longer one is
//! a typo, not a setting).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

/// The longest duration a setting accepts.
pub const MAX: Duration = Duration::from_secs(30 * 86_400);

/// Parses a configuration duration; the error says what is wrong.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!(
            "invalid duration {s:?}: durations cannot be negative"
        ));
    }
    if t.is_empty() {
        return Err("empty duration; use e.g. \"500ms\" or \"2s\"".into());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let value: f64 = num.parse().map_err(|_| {
            format!("invalid duration {s:?}: expected a number then a unit, e.g. \"500ms\", \"2s\", \"1m30s\"")
        })?;
        let scale = match unit {
            "us" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "" => return Err(format!("invalid duration {s:?}: the number needs a unit (us, ms, s, m, h, d)")),
            other => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {other:?} (use us, ms, s, m, h, d, without spaces)"
                ))
            }
        };
        total += value * scale;
        rest = next.trim_start(); // "1m 30s": spaces between parts are fine
    }
    if total > MAX.as_secs_f64() {
        return Err(format!(
            "duration {s:?} is longer than the 30 days a setting accepts"
        ));
    }
    Ok(Duration::from_secs_f64(total))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map(Dur).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(self.0))
    }
}

/// The duration in the largest unit that states it exactly ("90s", "1500ms", "8h").
pub fn format(d: Duration) -> String {
    let us = d.as_micros();
    for (unit, size) in [
        ("d", 86_400_000_000u128),
        ("h", 3_600_000_000),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
    ] {
        if us >= size && us.is_multiple_of(size) {
            return format!("{}{unit}", us / size);
        }
    }
    format!("{us}us")
}

#[cfg(test)]
mod tests {
    use super::{format, parse};
    use std::time::Duration;

    #[test]
    fn forms() {
        let ok = |s: &str, d: Duration| assert_eq!(parse(s), Ok(d), "{s}");
        ok("500ms", Duration::from_millis(500));
        ok("2s", Duration::from_secs(2));
        ok("1m30s", Duration::from_secs(90));
        ok("1.5h", Duration::from_secs(5400));
        ok("8h", Duration::from_secs(8 * 3600));
        ok("250us", Duration::from_micros(250));
        ok("0s", Duration::ZERO);
        ok("1m 30s", Duration::from_secs(90));
        for (bad, why) in [
            ("-1s", "cannot be negative"),
            ("3 secs", "needs a unit"),
            ("3secs", "unknown unit"),
            ("1000000h", "longer than the 30 days"),
            ("10", "needs a unit"),
            ("soon", "expected a number"),
            ("", "empty"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn what_serialize_writes_parses_back() {
        for d in [
            Duration::from_millis(1500),
            Duration::from_secs(600),
            Duration::from_secs(8 * 3600 + 61),
            Duration::ZERO,
            Duration::from_micros(7),
        ] {
            let text = format(d);
            assert_eq!(parse(&text), Ok(d), "{text}");
        }
    }
}
