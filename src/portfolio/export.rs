//! `portfolio export --growthbook`: the SDK payload that serves the same split.
//!
//! One feature named after the portfolio. Each segment becomes an experiment rule with the segment's
//! condition (none for the default segment), the portfolio's seed, hash attribute, hash version and
//! coverage, and the segment's weights. Variation values are `{"variant", "version"}` objects, so the
//! app learns both which arm it is in (for tracking) and which prompt version to serve.
//!
//! Two differences between GrowthBook's evaluation and "first matching segment wins" are bridged here:
//! an SDK skips an experiment rule whose unit is not enrolled (outside coverage, or fewer than two
//! variations) and goes on to the next rule. So a segment with coverage below 1 is followed by a force
//! rule with the same condition that serves the default value, and a one-variant portfolio is exported
//! as force rules.

use serde_json::{Value, json};

use super::spec::Portfolio;

/// The payload a GrowthBook SDK accepts (`new GrowthBook({ features })`, or `setPayload`).
pub fn growthbook_payload(portfolio: &Portfolio) -> Value {
    json!({
        "features": { portfolio.name.clone(): growthbook_feature(portfolio) },
        "experiments": [],
    })
}

pub fn growthbook_feature(portfolio: &Portfolio) -> Value {
    let values: Vec<Value> =
        portfolio.variants.iter().map(|v| json!({"variant": v.key, "version": v.version})).collect();
    let mut rules = Vec::new();
    for segment in &portfolio.segments {
        let condition = segment.when.as_ref().map(|r| r.to_growthbook());
        if values.len() < 2 {
            rules.push(force_rule(condition, values[0].clone()));
            continue;
        }
        let mut rule = json!({
            "id": format!("{}:{}", portfolio.name, segment.name),
            "key": portfolio.name,
            "seed": portfolio.seed,
            "hashAttribute": portfolio.hash_attribute,
            "hashVersion": portfolio.hash_version,
            "coverage": portfolio.coverage,
            "weights": segment.weights,
            "variations": values,
            "meta": portfolio.variants.iter().map(|v| json!({"key": v.key, "name": v.key})).collect::<Vec<_>>(),
            "name": format!("{} / {}", portfolio.name, segment.name),
        });
        if let Some(condition) = &condition {
            rule["condition"] = condition.clone();
        }
        rules.push(rule);
        if portfolio.coverage < 1.0 {
            rules.push(force_rule(condition, default_value(portfolio)));
        }
    }
    json!({ "defaultValue": default_value(portfolio), "rules": rules })
}

/// Units outside coverage are served the first variant's version without being in the experiment.
fn default_value(portfolio: &Portfolio) -> Value {
    json!({"variant": null, "version": portfolio.variants[0].version})
}

fn force_rule(condition: Option<Value>, value: Value) -> Value {
    let mut rule = json!({ "force": value });
    if let Some(condition) = condition {
        rule["condition"] = condition;
    }
    rule
}
