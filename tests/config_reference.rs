//! `config/sluice.toml` is the configuration reference: every key the configuration types
//! accept appears in it (set, or commented out with its default), so it cannot drift from
//! the code again.

/// The header of a section line (`[x]`, `[[x]]`, `# [x]`), if the line is one.
fn header(line: &str) -> Option<&str> {
    let l = line.trim_start_matches('#').trim();
    let name = l.strip_prefix('[')?.strip_suffix(']')?;
    Some(name.trim_matches(['[', ']']))
}

/// The lines of every block of `section` (arrays of tables have several).
fn section_lines<'a>(text: &'a str, section: &str) -> Vec<&'a str> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        match header(line) {
            Some(h) => inside = h == section,
            None if inside => out.push(line),
            None => {}
        }
    }
    out
}

#[test]
fn every_configuration_key_appears_in_the_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sluice.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let cfg = sluice::config::Config::parse(&text, "config/sluice.toml").expect("valid");
    let value = serde_json::to_value(&cfg).unwrap();
    let mut missing = Vec::new();
    let mut value = value;
    // optional keys are left out when unset: a rule with every key set stands for [[rules]]
    value["rules"] = serde_json::json!([every_rule_key()]);
    for (section, body) in value.as_object().unwrap() {
        let fields = match body {
            serde_json::Value::Object(o) => o.clone(),
            serde_json::Value::Array(a) => match a.first() {
                Some(serde_json::Value::Object(o)) => o.clone(),
                _ => continue,
            },
            _ => continue,
        };
        if !text.lines().any(|l| header(l) == Some(section.as_str())) {
            missing.push(format!("[{section}]"));
            continue;
        }
        let lines = section_lines(&text, section);
        for key in fields.keys() {
            let present = lines.iter().any(|l| {
                let l = l.trim_start_matches('#').trim_start();
                l.starts_with(&format!("{key} =")) || l.starts_with(&format!("{key}="))
            });
            if !present {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(missing.is_empty(), "not in config/sluice.toml: {missing:?}");
}

/// A rule with every field set (no `..Default::default()`: a new field must be added here,
/// and so to the reference).
fn every_rule_key() -> serde_json::Value {
    use sluice::config::rules::{Rule, RuleKind};
    let d = || Some(sluice::config::Dur(std::time::Duration::from_secs(1)));
    let s = || Some("x".to_string());
    let rule = Rule {
        name: "x".into(),
        digest_pattern: s(),
        pattern: s(),
        digest: s(),
        case_sensitive: false,
        user: s(),
        schema: s(),
        client: s(),
        kind: Some(RuleKind::Read),
        route: s(),
        fallback: Some(sluice::config::Fallback::Primary),
        max_lag: d(),
        read_your_writes: Some(sluice::config::ReadYourWrites::Off),
        reject: s(),
        reject_code: Some(1148),
        rewrite: s(),
        mirror: s(),
        mirror_writes: false,
        timeout: d(),
        cache_ttl: d(),
        cache_refresh_ahead: false,
        log: false,
        keep_going: false,
        override_hints: false,
    };
    serde_json::to_value(rule).unwrap()
}

/// `sluice check` names the key of each rule problem, all in one run, and fails.
#[test]
fn sluice_check_reports_every_rule_problem_with_its_key() {
    let dir = std::env::temp_dir().join(format!("sluice-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.toml");
    let text = "[listen]\naddress = \"127.0.0.1:6033\"\n[admin]\naddress = \"127.0.0.1:9033\"\n\
        [[users]]\nname = \"app\"\npassword = \"x\"\n\
        [[backends]]\nname = \"db0\"\naddress = \"127.0.0.1:3306\"\nrole = \"primary\"\n\
        [[backends]]\nname = \"db1\"\naddress = \"127.0.0.1:3307\"\nrole = \"replica\"\ngroups = [\"reporting\"]\n\
        [[rules]]\nname = \"a\"\npattern = \"(unclosed\"\n\
        [[rules]]\nname = \"a\"\nroute = \"group:nope\"\n";
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for want in [
        "rules[0].pattern: not a valid regex",
        "rules[1].name: duplicate rule name \"a\"",
        "rules[1].route: unknown group \"nope\"",
    ] {
        assert!(err.contains(want), "{want} not in:\n{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
