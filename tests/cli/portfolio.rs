//! `promptctl portfolio …` and `promptctl rollback` through the binary: contracts, bad input, the
//! GrowthBook round trip, rebalancing and rollbacks.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::{Project, snapshot_settings};

/// A project with the repo's prompts committed, a second support-reply version, and production on the
/// first one. Returns (project, first version, second version).
fn project() -> (Project, String, String) {
    let p = Project::with_prompts();
    p.run(&["init"], 0);
    p.run(&["prompt", "commit", "-m", "first"], 0);
    let text = p.read("prompts/support-reply.prompt").replace("concise tone", "concise, warm tone");
    p.write("prompts/support-reply.prompt", &text);
    p.run(&["prompt", "commit", "-m", "warmer"], 0);
    let first = p.json(&["prompt", "show", "support-reply@~1"])["version"].as_str().unwrap().to_string();
    let second = p.json(&["prompt", "show", "support-reply@~0"])["version"].as_str().unwrap().to_string();
    p.run(&["prompt", "label", "support-reply@~1", "production"], 0);
    (p, first, second)
}

fn portfolio_yaml(second: &str) -> String {
    format!(
        "\
name: support-reply
prompt: support-reply
seed: support-reply
hash_attribute: user_id
hash_version: 2
coverage: 1.0
variants:
  - {{ key: control, version: production, weight: 0.5 }}
  - {{ key: warm, version: {second}, weight: 0.5 }}
segments:
  - name: enterprise
    when: {{ plan: enterprise }}
    weights: {{ control: 0.8, warm: 0.2 }}
rebalance:
  objective: resolved
  min_weight: 0.05
  max_shift: 0.2
  min_samples: 100
"
    )
}

fn with_portfolio() -> (Project, String, String) {
    let (p, first, second) = project();
    p.write("portfolios/support-reply.yaml", &portfolio_yaml(&second));
    p.run(&["portfolio", "set", "portfolios/support-reply.yaml"], 0);
    (p, first, second)
}

#[test]
fn set_records_resolved_versions_and_show_lists_history() {
    let (p, first, second) = with_portfolio();
    let again = p.json(&["portfolio", "set", "portfolios/support-reply.yaml"]);
    assert_eq!(again["changed"], false, "an identical file records nothing");
    let show = p.json(&["portfolio", "show", "support-reply"]);
    assert_eq!(show["schema"], "promptctl.portfolio-show/v1");
    assert_eq!(show["variants"][0], json!({"key": "control", "version_ref": "production", "version": first}));
    assert_eq!(show["variants"][1]["version"], second.as_str());
    assert_eq!(show["segments"][0]["when"], json!({"plan": "enterprise"}));
    assert_eq!(show["segments"][1]["weights"], json!({"control": 0.5, "warm": 0.5}));
    let history = show["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["actor"], "tester@acme.example");
    assert_eq!(history[0]["reason"], "set from portfolios/support-reply.yaml");
    snapshot_settings(&p).bind(|| {
        let human = p.run(&["portfolio", "show", "support-reply"], 0).0;
        insta::assert_snapshot!("portfolio_show_human", human.replace(&first, "[V1]").replace(&second, "[V2]"));
    });
}

#[test]
fn bad_portfolio_files_are_refused_with_positions() {
    let (p, _, second) = project();
    let good = portfolio_yaml(&second);
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("control, version: production, weight: 0.5", "control, version: production, weight: 0.6"),
            "weights sum to 1.1, not 1",
        ),
        (good.replace("control: 0.8, warm: 0.2", "control: 1.2, warm: -0.2"), "weights must be ≥ 0"),
        (good.replace("version: production", "version: prodution"), "did you mean the label `production`"),
        (
            good.replace(&format!("version: {second}"), "version: 0123456789ab"),
            "has no label or version `0123456789ab`",
        ),
        (good.replace("key: warm", "key: control"), "duplicate variant key `control`"),
        (good.replace("plan: enterprise", "plan: { contains: ent }"), "unknown operator `contains`"),
        (good.replace(", weight: 0.5", ""), "a default segment is required"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        p.write("portfolios/bad.yaml", text);
        let (_, stderr) = p.run(&["portfolio", "set", "portfolios/bad.yaml"], 2);
        assert!(stderr.contains(expected), "case {i}: {stderr}");
        assert!(stderr.contains("portfolios/bad.yaml:"), "case {i} names the file: {stderr}");
    }
    // Positions: the weight that breaks the sum, the duplicate key, the unknown operator.
    p.write("portfolios/bad.yaml", &cases[0].0);
    assert!(p.run(&["portfolio", "set", "portfolios/bad.yaml"], 2).1.contains("portfolios/bad.yaml:8:"));
    p.write("portfolios/bad.yaml", &cases[4].0);
    assert!(p.run(&["portfolio", "set", "portfolios/bad.yaml"], 2).1.contains("portfolios/bad.yaml:9:"));
    p.write("portfolios/bad.yaml", &cases[5].0);
    assert!(p.run(&["portfolio", "set", "portfolios/bad.yaml"], 2).1.contains("portfolios/bad.yaml:12:"));
    // --normalize accepts the off sum with a warning.
    p.write("portfolios/bad.yaml", &cases[0].0);
    let (stdout, stderr) = p.run(&["portfolio", "set", "portfolios/bad.yaml", "--normalize", "--format", "json"], 0);
    assert!(stderr.contains("warning:") && stderr.contains("normalized"), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let w = &doc["segments"][1]["weights"];
    assert!((w["control"].as_f64().unwrap() - 0.6 / 1.1).abs() < 1e-12);
    assert!(p.run(&["portfolio", "show", "nope"], 2).1.contains("no portfolio named `nope`"));
}

#[test]
fn a_variant_of_another_prompt_is_named_as_such() {
    let (p, _, second) = project();
    let triage = p.json(&["prompt", "show", "triage"])["version"].as_str().unwrap().to_string();
    p.write("portfolios/x.yaml", &portfolio_yaml(&second).replace(&second, &triage));
    let (_, stderr) = p.run(&["portfolio", "set", "portfolios/x.yaml"], 2);
    assert!(
        stderr.contains(&format!("is version {triage} of prompt `triage`, not a version of `support-reply`")),
        "{stderr}"
    );
}

#[test]
fn assign_matches_the_contract_and_rejects_control_characters() {
    let (p, first, _) = with_portfolio();
    let doc = p.json(&["portfolio", "assign", "support-reply", "--unit", "u-000123", "--attr", "plan=enterprise"]);
    let keys: Vec<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 7, "{doc}");
    for key in ["schema", "portfolio", "unit", "segment", "variant", "version", "bucket"] {
        assert!(doc.get(key).is_some(), "{key} in {doc}");
    }
    assert_eq!(doc["segment"], "enterprise");
    let bucket = doc["bucket"].as_f64().unwrap();
    assert_eq!(doc["variant"], if bucket < 0.8 { "control" } else { "warm" });
    if doc["variant"] == "control" {
        assert_eq!(doc["version"], first.as_str());
    }
    let emoji = p.json(&["portfolio", "assign", "support-reply", "--unit", "ü-😀-用户"]);
    assert_eq!(emoji["unit"], "ü-😀-用户");
    let (_, stderr) = p.run(&["portfolio", "assign", "support-reply", "--unit", "u-1\tx"], 2);
    assert!(stderr.contains("control character U+0009"), "{stderr}");
    let (_, stderr) = p.run(&["portfolio", "assign", "support-reply", "--unit", "u-1", "--attr", "plan"], 2);
    assert!(stderr.contains("is not K=V"), "{stderr}");
}

#[test]
fn units_file_streams_the_same_records_and_reports_bad_lines() {
    let (p, _, _) = with_portfolio();
    let ids: Vec<String> =
        (0..300).map(|i| format!("u-{i:05}")).chain(["quote\"and\\slash".to_string(), "ünï😀".to_string()]).collect();
    p.write("units.txt", &(ids.join("\r\n") + "\r\n\r\n"));
    let (stdout, _) =
        p.run(&["portfolio", "assign", "support-reply", "--units-file", "units.txt", "--attr", "plan=enterprise"], 0);
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), ids.len());
    for (id, line) in ids.iter().zip(&lines).step_by(37).chain(ids.iter().zip(&lines).skip(300)) {
        let mut one = p.json(&["portfolio", "assign", "support-reply", "--unit", id, "--attr", "plan=enterprise"]);
        one.as_object_mut().unwrap().remove("schema");
        assert_eq!(&one, line, "{id}");
    }
    p.write_bytes("bad.txt", b"u-1\nu\x002\n\xff\xfe\nu-4\n");
    let (stdout, stderr) = p.run(&["portfolio", "assign", "support-reply", "--units-file", "bad.txt"], 2);
    assert_eq!(stdout.lines().count(), 2);
    assert!(stderr.contains("bad.txt:2: the unit id contains the control character U+0000"), "{stderr}");
    assert!(stderr.contains("bad.txt:3: not valid UTF-8"), "{stderr}");
    p.write("empty.txt", "\n\n");
    let (_, stderr) = p.run(&["portfolio", "assign", "support-reply", "--units-file", "empty.txt"], 2);
    assert!(stderr.contains("no unit ids"), "{stderr}");
}

// ---- GrowthBook round trip: the exported payload, evaluated as the SDKs evaluate features ----

/// JavaScript's `String(value)` for the JSON values attributes can hold (`null` for missing).
fn js_string(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "null".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap();
            if x.fract() == 0.0 && x.abs() < 1e21 { format!("{}", x as i64) } else { x.to_string() }
        }
        Some(other) => other.to_string(),
    }
}

/// JavaScript's `Number(value)`.
fn js_number(value: Option<&Value>) -> f64 {
    match value {
        None | Some(Value::Null) => 0.0,
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::Number(n)) => n.as_f64().unwrap(),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                0.0
            } else if let Some(sign) = ["Infinity", "+Infinity", "-Infinity"].iter().position(|i| *i == t) {
                if sign == 2 { f64::NEG_INFINITY } else { f64::INFINITY }
            } else if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                i64::from_str_radix(hex, 16).map_or(f64::NAN, |n| n as f64)
            } else if t.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) {
                t.parse().unwrap_or(f64::NAN)
            } else {
                f64::NAN
            }
        }
        Some(_) => f64::NAN,
    }
}

/// JavaScript's relational comparison: strings compare as strings, anything else as numbers.
fn js_compare(actual: Option<&Value>, expected: &Value) -> Option<std::cmp::Ordering> {
    if let (Some(Value::String(a)), Value::String(b)) = (actual, expected) {
        return Some(a.encode_utf16().cmp(b.encode_utf16()));
    }
    js_number(actual).partial_cmp(&js_number(Some(expected)))
}

fn strict_equal(actual: Option<&Value>, expected: &Value) -> bool {
    match (actual, expected) {
        (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Some(a), b) => a == b,
        (None, _) => false,
    }
}

/// GrowthBook's `evalConditionValue` (packages/sdk-js/src/mongrule.ts), for the operators promptctl exports.
fn eval_condition_value(condition: &Value, value: Option<&Value>) -> bool {
    match condition {
        Value::String(s) => js_string(value) == *s,
        Value::Number(n) => js_number(value) == n.as_f64().unwrap(),
        Value::Object(ops) if ops.keys().all(|k| k.starts_with('$')) => {
            ops.iter().all(|(op, expected)| match op.as_str() {
                "$eq" => strict_equal(value, expected),
                "$ne" => !strict_equal(value, expected),
                "$lt" => js_compare(value, expected) == Some(std::cmp::Ordering::Less),
                "$lte" => {
                    matches!(js_compare(value, expected), Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal))
                }
                "$gt" => js_compare(value, expected) == Some(std::cmp::Ordering::Greater),
                "$gte" => {
                    matches!(js_compare(value, expected), Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal))
                }
                "$exists" => expected.as_bool().unwrap() == value.is_some_and(|v| !v.is_null()),
                "$in" => expected.as_array().unwrap().iter().any(|e| strict_equal(value, e)),
                "$nin" => !expected.as_array().unwrap().iter().any(|e| strict_equal(value, e)),
                "$regex" => regex::Regex::new(expected.as_str().unwrap()).unwrap().is_match(&js_string(value)),
                other => panic!("operator {other} is not exported by promptctl"),
            })
        }
        other => value == Some(other),
    }
}

fn eval_condition(attributes: &serde_json::Map<String, Value>, condition: &Value) -> bool {
    condition.as_object().unwrap().iter().all(|(path, cond)| eval_condition_value(cond, attributes.get(path)))
}

/// GrowthBook's feature evaluation: the first rule whose condition matches and which either forces a
/// value or enrolls the unit in its experiment; else the default value.
fn eval_feature(feature: &Value, attributes: &serde_json::Map<String, Value>) -> Value {
    use promptctl::portfolio::allocate::{bucket_ranges, choose_variation};
    use promptctl::portfolio::hashing::hash;
    for rule in feature["rules"].as_array().unwrap() {
        if let Some(condition) = rule.get("condition")
            && !eval_condition(attributes, condition)
        {
            continue;
        }
        if let Some(forced) = rule.get("force") {
            return forced.clone();
        }
        let variations = rule["variations"].as_array().unwrap();
        if variations.len() < 2 {
            continue;
        }
        let hash_attribute = rule["hashAttribute"].as_str().unwrap_or("id");
        let hash_value = js_string(attributes.get(hash_attribute));
        if attributes.get(hash_attribute).is_none() || hash_value.is_empty() {
            continue;
        }
        let seed = rule.get("seed").or(rule.get("key")).and_then(Value::as_str).unwrap();
        let version = rule.get("hashVersion").and_then(Value::as_u64).unwrap_or(1) as u32;
        let Some(n) = hash(seed, &hash_value, version) else { continue };
        let weights: Vec<f64> = rule["weights"].as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
        let coverage = rule.get("coverage").and_then(Value::as_f64).unwrap_or(1.0);
        let ranges = bucket_ranges(variations.len(), coverage, Some(&weights));
        if let Some(i) = choose_variation(n, &ranges) {
            return variations[i].clone();
        }
    }
    feature["defaultValue"].clone()
}

#[test]
fn the_growthbook_export_round_trips_through_the_sdk_algorithm() {
    let (p, _, second) = project();
    let yaml = format!(
        "\
name: routing
prompt: support-reply
hash_attribute: user_id
hash_version: 2
coverage: 0.85
variants:
  - {{ key: control, version: production }}
  - {{ key: warm, version: {second} }}
  - {{ key: spare, version: production }}
segments:
  - name: enterprise
    when: {{ plan: enterprise, seats: {{ gte: 100 }} }}
    weights: {{ control: 0.1, warm: 0.6, spare: 0.3 }}
  - name: europe
    when: {{ country: [DE, FR, '49'], plan: {{ ne: free }} }}
    weights: {{ control: 0.3, warm: 0.3, spare: 0.4 }}
  - name: staff
    when: {{ email: {{ regex: '@acme\\.example$' }}, beta: {{ exists: false }} }}
    weights: {{ warm: 1.0 }}
  - name: small
    when: {{ seats: {{ lt: 10 }} }}
    weights: {{ control: 0.5, warm: 0.5 }}
  - name: default
    weights: {{ control: 0.25, warm: 0.5, spare: 0.25 }}
"
    );
    p.write("portfolios/routing.yaml", &yaml);
    p.run(&["portfolio", "set", "portfolios/routing.yaml"], 0);
    p.write("portfolios/v1.yaml", &format!(
        "name: legacy\nprompt: support-reply\nhash_version: 1\nvariants:\n  - {{ key: a, version: production, weight: 0.3 }}\n  - {{ key: b, version: {second}, weight: 0.7 }}\n"
    ));
    p.run(&["portfolio", "set", "portfolios/v1.yaml"], 0);
    let units: Vec<String> =
        (0..250).map(|i| format!("user-{i}")).chain(["ü-1".into(), "😀".into(), "e\u{301}".into()]).collect();
    p.write("units.txt", &units.join("\n"));
    let attribute_sets: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("plan", "enterprise"), ("seats", "150")],
        vec![("plan", "enterprise"), ("seats", " 120 ")],
        vec![("plan", "enterprise"), ("seats", "0x64")],
        vec![("plan", "enterprise"), ("seats", "99")],
        vec![("plan", "enterprise"), ("seats", "many")],
        vec![("country", "DE")],
        vec![("country", "49"), ("plan", "free")],
        vec![("country", "49"), ("plan", "pro")],
        vec![("email", "jo@acme.example")],
        vec![("email", "jo@acme.example"), ("beta", "")],
        vec![("seats", "")],
        vec![("seats", "3")],
        vec![("seats", "-Infinity")],
    ];
    let mut compared = 0;
    for (name, hash_attribute) in [("routing", "user_id"), ("legacy", "id")] {
        let exported = p.run(&["portfolio", "export", name, "--growthbook"], 0).0;
        let payload: Value = serde_json::from_str(&exported).unwrap();
        let feature = &payload["features"][name];
        for set in &attribute_sets {
            let mut args = vec!["portfolio", "assign", name, "--units-file", "units.txt"];
            for (k, v) in set {
                args.push("--attr");
                args.push(Box::leak(format!("{k}={v}").into_boxed_str()));
            }
            let stdout = p.run(&args, 0).0;
            for (unit, line) in units.iter().zip(stdout.lines()) {
                let assigned: Value = serde_json::from_str(line).unwrap();
                let mut attributes: serde_json::Map<String, Value> =
                    set.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                attributes.insert(hash_attribute.into(), json!(unit));
                let served = eval_feature(feature, &attributes);
                assert_eq!(
                    (&served["variant"], &served["version"]),
                    (&assigned["variant"], &assigned["version"]),
                    "{name} {unit} {set:?}: sdk {served} vs assign {assigned}"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 2 * 14 * 253);
}

// ---- observations ----

fn line(ts: &str, unit: &str, variant: &str, segment: &str, resolved: Option<u8>) -> String {
    let mut v = json!({"ts": ts, "unit": unit, "variant": variant, "segment": segment, "cost_usd": 0.002});
    if let Some(r) = resolved {
        v["resolved"] = json!(r);
    }
    v.to_string()
}

#[test]
fn observe_imports_idempotently_and_refuses_bad_lines() {
    let (p, _, _) = with_portfolio();
    let lines = [
        line("2026-11-02T10:00:00Z", "u-1", "control", "default", Some(1)),
        line("2026-11-02T10:01:00Z", "u-2", "warm", "default", None),
        json!({"ts": "2026-11-03T09:00:00Z", "unit": "u-2", "event": "outcome", "resolved": 0}).to_string(),
    ];
    p.write("outcomes.jsonl", &lines.join("\n"));
    let first = p.json(&["portfolio", "observe", "support-reply", "--outcomes", "outcomes.jsonl"]);
    assert_eq!(first["schema"], "promptctl.portfolio-observe/v1");
    assert_eq!((first["exposures"].as_u64(), first["outcomes"].as_u64()), (Some(2), Some(2)));
    let again = p.json(&["portfolio", "observe", "support-reply", "--outcomes", "outcomes.jsonl"]);
    assert_eq!(
        (again["exposures"].as_u64(), again["outcomes"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(0), Some(3))
    );

    let bad = [
        line("2026-11-02T10:00:00Z", "u-7", "control", "default", Some(1)),
        line("2026-11-02T10:00:00Z", "u-8", "concise", "default", Some(1)),
        json!({"ts": "2026-11-03T09:00:00Z", "unit": "u-99", "event": "outcome", "resolved": 1}).to_string(),
        "{\"ts\": \"2026-11-02T10:00:00Z\", \"unit\": ".to_string(),
        line("2026-11-02T10:00:00Z", "u-9", "warm", "vip", Some(0)),
    ];
    p.write("bad.jsonl", &bad.join("\n"));
    let (_, stderr) = p.run(&["portfolio", "observe", "support-reply", "--outcomes", "bad.jsonl"], 2);
    assert!(stderr.contains("bad.jsonl:2: unknown variant `concise`"), "{stderr}");
    assert!(stderr.contains("bad.jsonl:3: unit \"u-99\" was never exposed"), "{stderr}");
    assert!(stderr.contains("bad.jsonl:4:"), "{stderr}");
    assert!(stderr.contains("bad.jsonl:5: unknown segment `vip`"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    let skipped = p.json(&["portfolio", "observe", "support-reply", "--outcomes", "bad.jsonl", "--skip-bad"]);
    assert_eq!(skipped["exposures"], 1);
    p.write("empty.jsonl", "");
    assert!(p.run(&["portfolio", "observe", "support-reply", "--outcomes", "empty.jsonl"], 2).1.contains("empty"));
}

/// Writes `n` exposure+outcome lines per (segment, variant) with the given success counts, at `ts`.
fn outcomes_file(p: &Project, name: &str, ts: &str, cells: &[(&str, &str, usize, usize)]) {
    let mut lines = Vec::new();
    for (segment, variant, n, successes) in cells {
        for i in 0..*n {
            let unit = format!("{name}-{segment}-{variant}-{i}");
            lines.push(line(ts, &unit, variant, segment, Some(u8::from(i < *successes))));
        }
    }
    p.write(name, &lines.join("\n"));
}

#[test]
fn rebalance_holds_on_little_data_moves_on_evidence_and_refuses_on_mismatch() {
    let (p, _, _) = with_portfolio();
    let now = jiff::Timestamp::now();
    let ts = (now - jiff::SignedDuration::from_hours(24)).to_string();
    outcomes_file(&p, "small.jsonl", &ts, &[("default", "control", 40, 20), ("default", "warm", 40, 25)]);
    p.run(&["portfolio", "observe", "support-reply", "--outcomes", "small.jsonl"], 0);
    let held = p.json(&["portfolio", "rebalance", "support-reply"]);
    assert_eq!(held["schema"], "promptctl.rebalance/v1");
    let default = held["segments"].as_array().unwrap().iter().find(|s| s["segment"] == "default").unwrap();
    assert_eq!(default["held"], true);
    assert!(default["reason"].as_str().unwrap().contains("too little data"));
    assert_eq!(default["variants"][0]["reason"], "n = 40 < min_samples 100");

    outcomes_file(
        &p,
        "big.jsonl",
        &ts,
        &[
            ("default", "control", 500, 250),
            ("default", "warm", 500, 330),
            ("enterprise", "control", 160, 80),
            ("enterprise", "warm", 40, 20),
        ],
    );
    p.run(&["portfolio", "observe", "support-reply", "--outcomes", "big.jsonl"], 0);
    let until = now.to_string();
    let proposed = p.json(&["portfolio", "rebalance", "support-reply", "--until", &until]);
    assert_eq!(proposed["applied"], false);
    assert_eq!(proposed["srm"]["ok"], true);
    let default = proposed["segments"].as_array().unwrap().iter().find(|s| s["segment"] == "default").unwrap();
    let warm = &default["variants"][1];
    for key in ["variant", "n", "reward_mean", "p_best", "weight_from", "weight_to", "interval"] {
        assert!(warm.get(key).is_some(), "{key} in {warm}");
    }
    assert!(warm["p_best"].as_f64().unwrap() > 0.99);
    assert!((warm["weight_to"].as_f64().unwrap() - 0.7).abs() < 1e-9, "max_shift 0.2: {warm}");
    let enterprise = proposed["segments"].as_array().unwrap().iter().find(|s| s["segment"] == "enterprise").unwrap();
    assert_eq!(enterprise["held"], true, "warm has 40 < 100 outcomes there");
    assert_eq!(
        p.json(&["portfolio", "rebalance", "support-reply", "--until", &until]),
        proposed,
        "same seed, same draws"
    );

    let applied = p.json(&["portfolio", "rebalance", "support-reply", "--apply", "--reason", "week 45"]);
    assert_eq!((applied["applied"].as_bool(), applied["version_to"].as_i64()), (Some(true), Some(2)));
    let show = p.json(&["portfolio", "show", "support-reply"]);
    assert_eq!(show["history"][1]["change"], "rebalance");
    assert_eq!(show["history"][1]["reason"], "week 45");
    assert!((show["segments"][1]["weights"]["warm"].as_f64().unwrap() - 0.7).abs() < 1e-9);
    snapshot_settings(&p).bind(|| {
        let human = p.run(&["portfolio", "rebalance", "support-reply", "--until", &now.to_string()], 0).0;
        let human =
            regex::Regex::new(r"\d{4}-\d{2}-\d{2}T[\d:.]+Z").unwrap().replace_all(&human, "[TIME]").into_owned();
        insta::assert_snapshot!("portfolio_rebalance_human", human);
    });
}

#[test]
fn a_sample_ratio_mismatch_refuses_with_exit_1() {
    let (p, _, _) = with_portfolio();
    let ts = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2)).to_string();
    outcomes_file(&p, "skewed.jsonl", &ts, &[("default", "control", 700, 350), ("default", "warm", 300, 200)]);
    p.run(&["portfolio", "observe", "support-reply", "--outcomes", "skewed.jsonl"], 0);
    let (stdout, stderr) = p.run(&["portfolio", "rebalance", "support-reply", "--apply", "--format", "json"], 1);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((doc["srm"]["ok"].as_bool(), doc["applied"].as_bool()), (Some(false), Some(false)));
    assert!(doc["srm"]["p_value"].as_f64().unwrap() < 0.001);
    assert!(stderr.contains("pipeline is broken, not the prompt"), "{stderr}");
    assert_eq!(p.json(&["portfolio", "show", "support-reply"])["version"], 1);
}

// ---- rollback ----

fn connect(p: &Project) -> rusqlite::Connection {
    rusqlite::Connection::open(p.state()).unwrap()
}

fn insert_request(conn: &rusqlite::Connection, key: &str, conversation: &str, version: &str, ts_ms: i64, model: &str) {
    conn.execute(
        "INSERT INTO request (source, source_key, key, ts_ms, provider, request_model, conversation_id, attempt, status,
           streamed, usage_source, input_total, input_uncached, cache_read, cache_write_5m, cache_write_1h,
           output_total, reasoning, batch, prompt_name, prompt_version)
         VALUES ('import', ?1, CAST(?1 AS BLOB), ?2, 'openai', ?3, ?4, 1, 'ok', 0, 'provider', 10, 10, 0, 0, 0, 5, 0, 0,
           'support-reply', ?5)",
        rusqlite::params![key, ts_ms, model, conversation, version],
    )
    .unwrap();
}

fn insert_baseline(conn: &rusqlite::Connection, run: &str, version: &str, active: bool) -> i64 {
    conn.execute(
        "INSERT INTO eval_run (run_id, suite, suite_json, prompt_name, prompt_version, provider, samples, require,
           concurrency, samples_total, status, started_at) VALUES (?1, 'support', '{}', 'support-reply', ?2, 'sim:x', 1, 1, 1, 1, 'complete', '2026-11-01T00:00:00Z')",
        rusqlite::params![run, version],
    )
    .unwrap();
    conn.execute("UPDATE baseline SET active = 0 WHERE suite = 'support' AND ?1", [active]).unwrap();
    conn.execute(
        "INSERT INTO baseline (suite, run_id, prompt_name, prompt_version, created_at, actor, active) VALUES ('support', ?1, 'support-reply', ?2, '2026-11-01T00:00:00Z', 'ci', ?3)",
        rusqlite::params![run, version, active],
    )
    .unwrap();
    conn.last_insert_rowid()
}

/// A project where production moved from the first version (good) to the second (bad), with a
/// portfolio serving both, requests, baselines and observations made while the bad version served.
fn bad_release() -> (Project, String, String) {
    let (p, good, _) = with_portfolio();
    let text = p.read("prompts/support-reply.prompt").replace("concise, warm tone", "breezy tone");
    p.write("prompts/support-reply.prompt", &text);
    p.run(&["prompt", "commit", "-m", "breezy"], 0);
    let bad = p.json(&["prompt", "show", "support-reply@~0"])["version"].as_str().unwrap().to_string();
    let conn = connect(&p);
    let good_baseline = insert_baseline(&conn, "r-good", &good, true);
    p.run(&["prompt", "label", &format!("support-reply@{bad}"), "production", "--reason", "ship warm"], 0);
    // The portfolio's `control` followed production when it was set again after the release.
    p.run(&["portfolio", "set", "portfolios/support-reply.yaml", "--reason", "after release"], 0);
    let bad_baseline = insert_baseline(&conn, "r-bad", &bad, true);
    assert!(bad_baseline > good_baseline);
    let now_ms = jiff::Timestamp::now().as_millisecond();
    insert_request(&conn, "q1", "c-open", &bad, now_ms - 60_000, "gpt-4o-mini");
    insert_request(&conn, "q2", "c-open", &bad, now_ms - 30_000, "gpt-4o-mini-2024-07-18");
    insert_request(&conn, "q3", "c-old", &bad, now_ms - 3 * 86_400_000, "gpt-4o-mini");
    insert_request(&conn, "q4", "c-good", &good, now_ms - 60_000, "gpt-4o-mini");
    let ts = jiff::Timestamp::now().to_string();
    let lines = [
        line(&ts, "u-1", "control", "default", Some(0)),
        line(&ts, "u-2", "warm", "default", Some(1)),
        line(&ts, "u-3", "control", "enterprise", Some(1)),
    ];
    p.write("during.jsonl", &lines.join("\n"));
    p.run(&["portfolio", "observe", "support-reply", "--outcomes", "during.jsonl"], 0);
    (p, good, bad)
}

#[test]
fn rollback_plans_then_applies_everything_in_one_audited_transaction() {
    let (p, good, bad) = bad_release();
    let plan = p.json(&["rollback", "support-reply", "--to", &good[..8]]);
    assert_eq!(plan["schema"], "promptctl.rollback-plan/v1");
    assert_eq!(
        (plan["from"].as_str(), plan["to"].as_str(), plan["applied"].as_bool()),
        (Some(bad.as_str()), Some(good.as_str()), Some(false))
    );
    let actions = plan["actions"].as_array().unwrap();
    let kinds: Vec<&str> = actions.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["label", "portfolio_weights", "cache_invalidate", "conversations", "eval_baseline", "cohort_quarantine"]
    );
    assert_eq!(actions[0]["detail"], format!("production: {bad} → {good}"));
    assert_eq!(actions[1]["portfolio"], "support-reply");
    let keys: Vec<&str> = actions[2]["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with(&format!("promptctl:support-reply:{bad}:openai:gpt-4o-mini"))));
    assert_eq!(
        (actions[3]["policy"].as_str(), actions[3]["count"].as_u64(), actions[3]["ended"].as_u64()),
        (Some("pin"), Some(1), Some(1))
    );
    assert_eq!(actions[3]["ids"], json!(["c-open"]));
    assert_eq!(actions[4]["suite"], "support");
    assert_eq!(actions[5]["exposures"], 2, "control (= bad) in both segments");
    assert_eq!(
        p.json(&["prompt", "show", "support-reply@production"])["version"],
        bad.as_str(),
        "a plan changes nothing"
    );
    snapshot_settings(&p).bind(|| {
        let human = p.run(&["rollback", "support-reply", "--to", &good[..8]], 0).0;
        let human = human.replace(&good, "[GOOD]").replace(&bad, "[BAD]");
        let human = regex::Regex::new(r":[0-9a-f]{12}\b").unwrap().replace_all(&human, ":[PARAMS]").into_owned();
        insta::assert_snapshot!("rollback_plan_human", human);
    });

    let applied = p.json(&[
        "rollback",
        "support-reply",
        "--to",
        &good[..8],
        "--conversations",
        "migrate",
        "--apply",
        "--reason",
        "refunds regressed",
    ]);
    assert_eq!(applied["applied"], true);
    let id = applied["rollback_id"].as_i64().unwrap();
    assert_eq!(p.json(&["prompt", "show", "support-reply@production"])["version"], good.as_str());
    let show = p.json(&["portfolio", "show", "support-reply"]);
    assert_eq!(show["history"].as_array().unwrap().last().unwrap()["change"], "rollback");
    assert_eq!(show["segments"][1]["weights"], json!({"control": 0.0, "warm": 1.0}));
    let conn = connect(&p);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count(&format!("SELECT count(*) FROM exposure WHERE quarantine = {id}")), 2);
    assert_eq!(count(&format!("SELECT count(*) FROM outcome WHERE quarantine = {id}")), 2);
    assert_eq!(
        count("SELECT count(*) FROM conversation_policy WHERE policy = 'migrate' AND conversation_id = 'c-open'"),
        1
    );
    assert_eq!(count("SELECT active FROM baseline WHERE run_id = 'r-good'"), 1);
    assert_eq!(count("SELECT flagged_reason IS NOT NULL AND active = 0 FROM baseline WHERE run_id = 'r-bad'"), 1);
    assert_eq!(count("SELECT count(*) FROM audit_event WHERE kind = 'rollback' AND subject = 'support-reply'"), 1);
    let log = p.json(&["prompt", "log", "support-reply"]);
    assert_eq!(log["label_events"][0]["reason"], "refunds regressed");

    let again = p.json(&["rollback", "support-reply", "--to", &good[..8], "--apply"]);
    assert_eq!((again["noop"].as_bool(), again["applied"].as_bool()), (Some(true), Some(false)));
    assert_eq!(count("SELECT count(*) FROM rollback"), 1, "rolling back twice is a no-op");
    let (stdout, _) = p.run(&["rollback", "support-reply", "--to", "production"], 0);
    assert!(stdout.contains("already points at"), "{stdout}");

    // A rollback can itself be rolled back.
    let undo = p.json(&["rollback", "support-reply", "--to", &bad, "--apply"]);
    assert_eq!(undo["undo_of"], id);
    assert_eq!(p.json(&["prompt", "show", "support-reply@production"])["version"], bad.as_str());
    let show = p.json(&["portfolio", "show", "support-reply"]);
    let weight = |s: usize, v: &str| show["segments"][s]["weights"][v].as_f64().unwrap();
    for (s, v, expected) in [(1, "control", 0.5), (1, "warm", 0.5), (0, "control", 0.8), (0, "warm", 0.2)] {
        assert!((weight(s, v) - expected).abs() < 1e-12, "{}", show["segments"]);
    }
    assert_eq!(count("SELECT count(*) FROM exposure WHERE quarantine IS NOT NULL"), 0);
    assert_eq!(count("SELECT count(*) FROM conversation_policy WHERE revoked_by IS NULL"), 0);
    assert_eq!(count("SELECT active FROM baseline WHERE run_id = 'r-bad'"), 1);
    assert_eq!(count("SELECT active FROM baseline WHERE run_id = 'r-good'"), 0);
    assert_eq!(count("SELECT count(*) FROM audit_event WHERE kind = 'undo'"), 1);
}

#[test]
fn rollback_without_a_portfolio_and_bad_targets() {
    let (p, good, bad) = project();
    p.run(&["prompt", "label", &format!("support-reply@{bad}"), "production"], 0);
    let plan = p.json(&["rollback", "support-reply", "--to", &good]);
    let kinds: Vec<&str> = plan["actions"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["label", "cache_invalidate", "conversations"]);
    let triage = p.json(&["prompt", "show", "triage"])["version"].as_str().unwrap().to_string();
    let (_, stderr) = p.run(&["rollback", "support-reply", "--to", &triage[..10]], 2);
    assert!(stderr.contains("of prompt `triage`, not a version of `support-reply`"), "{stderr}");
    let (_, stderr) = p.run(&["rollback", "support-reply", "--to", &good, "--label", "canary"], 2);
    assert!(stderr.contains("no `canary` label"), "{stderr}");
    let (_, stderr) = p.run(&["rollback", "support-reply", "--to", &good, "--idle", "soon"], 2);
    assert!(stderr.contains("--idle"), "{stderr}");
}

#[test]
fn observe_derives_outcomes_from_traces_and_eval_runs() {
    let (p, first, second) = with_portfolio();
    let conn = connect(&p);
    let now_ms = jiff::Timestamp::now().as_millisecond();
    insert_request(&conn, "t1", "c-1", &first, now_ms - 1_000, "gpt-4o-mini");
    insert_request(&conn, "t2", "c-2", &second, now_ms - 1_000, "gpt-4o-mini");
    conn.execute(
        "INSERT INTO eval_run (run_id, suite, suite_json, prompt_name, prompt_version, provider, samples, require,
           concurrency, samples_total, status, started_at) VALUES ('r-1', 'support', '{}', 'support-reply', ?1, 'sim:x', 2, 1, 1, 2, 'complete', '2026-11-01T00:00:00Z')",
        [&second],
    )
    .unwrap();
    for (sample, outcome) in [(0, "pass"), (1, "fail")] {
        conn.execute(
            "INSERT INTO eval_sample (run_id, case_id, sample, outcome, assertions, attempts, completed_at) VALUES ('r-1', 'refund', ?1, ?2, '[]', 1, '2026-11-01T00:00:01Z')",
            rusqlite::params![sample, outcome],
        )
        .unwrap();
    }
    let traces = p.json(&["portfolio", "observe", "support-reply", "--from-traces", "--from-evals"]);
    let sources: BTreeMap<String, (u64, u64)> = traces["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap().to_string(),
                (s["exposures"].as_u64().unwrap(), s["outcomes"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(sources["trace"], (2, 2));
    assert_eq!(sources["eval"], (2, 2));
    let again = p.json(&["portfolio", "observe", "support-reply", "--from-traces", "--from-evals"]);
    assert_eq!(again["outcomes"], 0, "re-deriving is idempotent");
    let metric: f64 = conn
        .query_row("SELECT json_extract(metrics, '$.pass') FROM outcome WHERE unit = 'eval:r-1/refund/0'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(metric, 1.0);
}

#[test]
fn the_example_portfolios_in_the_repo_are_valid() {
    let p = Project::with_prompts();
    crate::common::copy_dir(&crate::common::repo_path("portfolios"), &p.path().join("portfolios"));
    p.run(&["init"], 0);
    p.run(&["prompt", "commit"], 0);
    for prompt in ["support-reply", "triage", "extract-order"] {
        p.run(&["prompt", "label", prompt, "production"], 0);
        p.run(&["prompt", "label", prompt, "candidate"], 0);
        let set = p.json(&["portfolio", "set", &format!("portfolios/{prompt}.yaml")]);
        assert_eq!(set["changed"], true, "{prompt}");
        let exported = p.run(&["portfolio", "export", prompt, "--growthbook"], 0).0;
        assert!(exported.contains("\"hashVersion\": 2"), "{prompt}");
    }
}

/// `fixtures/growthbook-export.json` holds what the official GrowthBook JS SDK (1.8.0) served for two
/// exported portfolios (see `fixtures/growthbook-export.js`). The payload must still be what promptctl
/// exports for those files, and `assign` must give every unit the variant the SDK gave it.
#[test]
fn the_export_serves_the_same_variants_in_the_real_growthbook_sdk() {
    use promptctl::portfolio::assign::Assigner;
    use promptctl::portfolio::export::growthbook_payload;
    use promptctl::portfolio::spec::ParsedFile;
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::common::repo_path("tests/cli/fixtures/growthbook-export.json")).unwrap(),
    )
    .unwrap();
    assert!(fixture["sdk"].as_str().unwrap().starts_with("@growthbook/growthbook 1.8"));
    let versions = fixture["versions"].as_object().unwrap();
    let mut compared = 0;
    for entry in fixture["portfolios"].as_array().unwrap() {
        let yaml = entry["yaml"].as_str().unwrap();
        let resolve = |_: &str, r: &str| Ok(versions.get(r).and_then(Value::as_str).unwrap_or(r).to_string());
        let portfolio = ParsedFile::parse(yaml, "fixture.yaml", false).unwrap().resolve(resolve).unwrap().0;
        assert_eq!(
            numbers_as_f64(&growthbook_payload(&portfolio)),
            numbers_as_f64(&entry["payload"]),
            "the export changed; regenerate the fixture"
        );
        let assigner = Assigner::new(&portfolio).unwrap();
        let units: Vec<&str> = entry["units"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
        for case in entry["cases"].as_array().unwrap() {
            let attrs: BTreeMap<String, String> = case["attrs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            for (unit, served) in units.iter().zip(case["served"].as_array().unwrap()) {
                let placed = assigner.place(unit, &attrs);
                let variant = placed.variant.map(|v| portfolio.variants[v].key.as_str());
                assert_eq!(variant, served.as_str(), "{} {unit:?} {attrs:?}", portfolio.name);
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 2 * 16 * 205);
}

/// JavaScript wrote `100.0` back as `100`; compare numbers by value.
fn numbers_as_f64(value: &Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_f64).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), numbers_as_f64(v))).collect()),
        other => other.clone(),
    }
}
