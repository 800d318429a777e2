//! Exposures and outcomes: reading the JSONL lines `portfolio observe` imports, and checking them
//! against the portfolio.
//!
//! A line is one JSON object (FORMATS.md):
//! `{"ts":"…","unit":"u-1","variant":"concise","segment":"default","resolved":1,"cost_usd":0.0021}`.
//! - `event` (optional): `exposure` (the unit was served the variant), `outcome` (a result for a unit
//!   exposed earlier, e.g. feedback that arrives days later), or absent: an exposure, and also an outcome
//!   when the line carries a metric.
//! - Metrics are every other field holding a number (or a boolean, read as 1/0): the portfolio's
//!   `objective` is one of them. Text fields that are not ours (`trace_id`, …) are ignored.
//! - `id` (optional) is the idempotency key; without it the key is a hash of the line's content, so
//!   importing the same file twice adds nothing.
//! - `segment` may be omitted when the line carries `attrs` (the segment is then computed) or the
//!   portfolio has only the default segment.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::assign::{Assigner, check_unit_id};
use super::spec::{DEFAULT_SEGMENT, Portfolio};

/// What a line says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Exposure,
    Outcome,
    /// Both an exposure and its outcome (a line without `event` that carries a metric).
    Both,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub line: usize,
    pub event: Event,
    pub ts_ms: i64,
    pub unit: String,
    pub variant: Option<String>,
    pub segment: Option<String>,
    pub attrs: Option<BTreeMap<String, String>>,
    pub metrics: BTreeMap<String, f64>,
    pub cost_usd: Option<f64>,
    pub key: String,
}

/// A bad line: 1-based line (and column for JSON syntax errors) and what is wrong.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LineError {
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub message: String,
}

const RESERVED: &[&str] = &["ts", "unit", "variant", "segment", "event", "id", "attrs", "cost_usd"];

/// Parses one non-blank line.
pub fn parse_line(text: &str, line: usize) -> Result<Observation, LineError> {
    let err = |message: String| LineError { line, column: None, message };
    let value: Value = serde_json::from_str(text).map_err(|e| LineError {
        line,
        column: Some(e.column()),
        message: format!("not valid JSON: {e}"),
    })?;
    let Value::Object(object) = value else {
        return Err(err("expected a JSON object".into()));
    };
    let text_field = |name: &str| -> Result<Option<String>, LineError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(err(format!("`{name}` must be a string"))),
        }
    };
    let unit = text_field("unit")?.ok_or_else(|| err("missing `unit`".into()))?;
    check_unit_id(&unit).map_err(|e| err(format!("{e} (unit {})", Value::String(unit.clone()))))?;
    let ts_text =
        text_field("ts")?.ok_or_else(|| err("missing `ts` (an RFC 3339 time, e.g. 2026-11-02T10:00:00Z)".into()))?;
    let ts: jiff::Timestamp =
        ts_text.parse().map_err(|e| err(format!("`ts` {ts_text:?} is not an RFC 3339 time with a zone: {e}")))?;
    let event = match text_field("event")?.as_deref() {
        None => None,
        Some("exposure") => Some(Event::Exposure),
        Some("outcome") => Some(Event::Outcome),
        Some(other) => return Err(err(format!("`event` must be exposure or outcome, not {other:?}"))),
    };
    let cost_usd = match object.get("cost_usd") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(c) if c >= 0.0 && c.is_finite() => Some(c),
            _ => return Err(err("`cost_usd` must be a number ≥ 0".into())),
        },
    };
    let attrs = match object.get("attrs") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(
            map.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(n) => Ok((k.clone(), n.to_string())),
                    Value::Bool(b) => Ok((k.clone(), b.to_string())),
                    _ => Err(err(format!("`attrs.{k}` must be a string, number or boolean"))),
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(err("`attrs` must be an object".into())),
    };
    let metrics: BTreeMap<String, f64> = object
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .filter_map(|(k, v)| match v {
            Value::Number(n) => n.as_f64().map(|x| (k.clone(), x)),
            Value::Bool(b) => Some((k.clone(), f64::from(u8::from(*b)))),
            _ => None,
        })
        .collect();
    let event = match event {
        Some(Event::Exposure) if !metrics.is_empty() => {
            let names = metrics.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(err(format!(
                "an exposure line carries no metrics (found {names}); drop `event` or the metrics"
            )));
        }
        Some(Event::Outcome) if metrics.is_empty() => {
            return Err(err("an outcome line needs at least one metric (a number field such as the objective)".into()));
        }
        Some(event) => event,
        None if metrics.is_empty() => Event::Exposure,
        None => Event::Both,
    };
    let key = match text_field("id")? {
        Some(id) => format!("id:{id}"),
        None => content_key(&object),
    };
    Ok(Observation {
        line,
        event,
        ts_ms: ts.as_millisecond(),
        unit,
        variant: text_field("variant")?,
        segment: text_field("segment")?,
        attrs,
        metrics,
        cost_usd,
        key,
    })
}

/// A hash of the line's content with keys sorted, so reformatting a line does not make it new.
fn content_key(object: &serde_json::Map<String, Value>) -> String {
    let mut canonical = String::new();
    crate::prompt::hash::write_canonical(&Value::Object(object.clone()), &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    format!("sha256:{}", hex::encode(&digest[..16]))
}

/// A unit's earlier exposure, as the state knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownExposure {
    pub variant: String,
    pub segment: String,
}

/// An observation checked against the portfolio, with its variant and segment settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub observation: Observation,
    pub variant: String,
    pub segment: String,
}

/// Checks variants and segments against the portfolio, settles the segment, and makes sure every
/// outcome-only line is about a unit exposed before (in `known`, or on an exposure line of the same
/// import). `known_variants` are the variant keys of every version of the portfolio (data may predate
/// the current one).
pub fn check(
    portfolio: &Portfolio,
    known_variants: &[String],
    observations: Vec<Observation>,
    known: &BTreeMap<String, Vec<KnownExposure>>,
) -> (Vec<Checked>, Vec<LineError>) {
    let assigner = Assigner::new(portfolio).ok();
    let mut exposed: BTreeMap<String, Vec<KnownExposure>> = BTreeMap::new();
    let mut checked = Vec::new();
    let mut errors = Vec::new();
    let mut outcome_only = Vec::new();
    for obs in observations {
        if obs.event == Event::Outcome {
            outcome_only.push(obs);
            continue;
        }
        match settle_exposure(portfolio, known_variants, assigner.as_ref(), &obs) {
            Ok((variant, segment)) => {
                exposed
                    .entry(obs.unit.clone())
                    .or_default()
                    .push(KnownExposure { variant: variant.clone(), segment: segment.clone() });
                checked.push(Checked { observation: obs, variant, segment });
            }
            Err(message) => errors.push(LineError { line: obs.line, column: None, message }),
        }
    }
    for obs in outcome_only {
        let earlier: Vec<&KnownExposure> =
            known.get(&obs.unit).into_iter().chain(exposed.get(&obs.unit)).flatten().collect();
        match settle_outcome(known_variants, &obs, &earlier) {
            Ok((variant, segment)) => checked.push(Checked { observation: obs, variant, segment }),
            Err(message) => errors.push(LineError { line: obs.line, column: None, message }),
        }
    }
    checked.sort_by_key(|c| c.observation.line);
    errors.sort_by_key(|e| e.line);
    (checked, errors)
}

fn unknown_variant(known_variants: &[String], variant: &str) -> String {
    let near = crate::suggest::nearest(variant, known_variants.iter().map(String::as_str));
    let hint = match near {
        Some(near) => format!("; did you mean `{near}`?"),
        None => format!(" (variants: {})", known_variants.join(", ")),
    };
    format!("unknown variant `{variant}`{hint}")
}

fn settle_exposure(
    portfolio: &Portfolio,
    known_variants: &[String],
    assigner: Option<&Assigner<'_>>,
    obs: &Observation,
) -> Result<(String, String), String> {
    let variant = obs.variant.clone().ok_or("missing `variant`")?;
    if !known_variants.contains(&variant) {
        return Err(unknown_variant(known_variants, &variant));
    }
    let segment = match (&obs.segment, &obs.attrs, assigner) {
        (Some(segment), _, _) => {
            if portfolio.segment_index(segment).is_none() {
                let names: Vec<&str> = portfolio.segments.iter().map(|s| s.name.as_str()).collect();
                return Err(format!("unknown segment `{segment}` (segments: {})", names.join(", ")));
            }
            segment.clone()
        }
        (None, Some(attrs), Some(assigner)) => portfolio.segments[assigner.segment_of(&obs.unit, attrs)].name.clone(),
        _ if portfolio.segments.len() == 1 => DEFAULT_SEGMENT.to_string(),
        _ => return Err("missing `segment` (or `attrs` to compute it): this portfolio has several segments".into()),
    };
    Ok((variant, segment))
}

fn settle_outcome(
    known_variants: &[String],
    obs: &Observation,
    earlier: &[&KnownExposure],
) -> Result<(String, String), String> {
    if let Some(variant) = &obs.variant
        && !known_variants.contains(variant)
    {
        return Err(unknown_variant(known_variants, variant));
    }
    if earlier.is_empty() {
        return Err(format!(
            "unit {} was never exposed: an outcome needs an exposure first (in the state or in this import)",
            Value::String(obs.unit.clone())
        ));
    }
    // The same exposure can be both in the state and in this import (a re-import): one per variant.
    let mut matching: Vec<&&KnownExposure> =
        earlier.iter().filter(|e| obs.variant.as_ref().is_none_or(|v| *v == e.variant)).collect();
    matching.sort_by(|a, b| a.variant.cmp(&b.variant));
    matching.dedup_by(|a, b| a.variant == b.variant);
    match matching.as_slice() {
        [] => Err(format!(
            "unit {} was exposed to {}, not to `{}`",
            Value::String(obs.unit.clone()),
            earlier.iter().map(|e| format!("`{}`", e.variant)).collect::<Vec<_>>().join(", "),
            obs.variant.as_deref().unwrap_or_default()
        )),
        [one] => Ok((one.variant.clone(), obs.segment.clone().unwrap_or_else(|| one.segment.clone()))),
        _ => Err(format!(
            "unit {} was exposed to several variants; the outcome must name its `variant`",
            Value::String(obs.unit.clone())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portfolio::spec::ParsedFile;

    fn portfolio() -> Portfolio {
        let text = "name: p\nvariants:\n  - { key: control, version: a, weight: 0.5 }\n  - { key: concise, version: b, weight: 0.5 }\nsegments:\n  - name: enterprise\n    when: { plan: enterprise }\n    weights: { control: 1 }\n";
        ParsedFile::parse(text, "p.yaml", false).unwrap().resolve(|_, r| Ok(r.to_string())).unwrap().0
    }

    fn variants() -> Vec<String> {
        vec!["control".into(), "concise".into()]
    }

    #[test]
    fn the_formats_line_is_an_exposure_and_an_outcome() {
        let line = r#"{"ts":"2026-11-02T10:00:00Z","unit":"u-1","variant":"concise","segment":"default","resolved":1,"cost_usd":0.0021}"#;
        let obs = parse_line(line, 1).unwrap();
        assert_eq!(obs.event, Event::Both);
        assert_eq!(obs.metrics, BTreeMap::from([("resolved".to_string(), 1.0)]));
        assert_eq!(obs.cost_usd, Some(0.0021));
        let reordered = r#"{"unit":"u-1","ts":"2026-11-02T10:00:00Z","variant":"concise","segment":"default","cost_usd":0.0021,"resolved":1}"#;
        assert_eq!(parse_line(reordered, 2).unwrap().key, obs.key);
    }

    #[test]
    fn bad_lines_say_why() {
        let e = parse_line(r#"{"ts":"2026-11-02T10:00:00Z","unit":"a\u0000b","variant":"x"}"#, 3).unwrap_err();
        assert!(e.message.contains("control character U+0000"), "{e:?}");
        let e = parse_line(r#"{"ts":"yesterday","unit":"u","variant":"x"}"#, 1).unwrap_err();
        assert!(e.message.contains("RFC 3339"));
        let e = parse_line(r#"{"ts":"2026-11-02T10:00:00Z","unit":"u","variant":"x""#, 1).unwrap_err();
        assert!(e.column.is_some());
        let e = parse_line(r#"{"ts":"2026-11-02T10:00:00Z","unit":"u","event":"outcome"}"#, 1).unwrap_err();
        assert!(e.message.contains("needs at least one metric"));
    }

    #[test]
    fn outcomes_need_an_earlier_exposure_and_known_variants() {
        let p = portfolio();
        let lines = [
            r#"{"ts":"2026-11-02T10:00:00Z","unit":"u-1","variant":"concise","segment":"default"}"#,
            r#"{"ts":"2026-11-03T10:00:00Z","unit":"u-1","event":"outcome","resolved":1}"#,
            r#"{"ts":"2026-11-03T10:00:00Z","unit":"u-2","event":"outcome","resolved":1}"#,
            r#"{"ts":"2026-11-03T10:00:00Z","unit":"u-3","variant":"consice","segment":"default","resolved":0}"#,
            r#"{"ts":"2026-11-03T10:00:00Z","unit":"u-4","variant":"control","attrs":{"plan":"enterprise"}}"#,
            r#"{"ts":"2026-11-03T10:00:00Z","unit":"u-5","variant":"control"}"#,
            r#"{"ts":"2026-11-03T10:00:00Z","unit":"u-9","event":"outcome","resolved":1}"#,
        ];
        let obs = lines.iter().enumerate().map(|(i, l)| parse_line(l, i + 1).unwrap()).collect();
        let known = BTreeMap::from([(
            "u-9".to_string(),
            vec![KnownExposure { variant: "control".into(), segment: "enterprise".into() }],
        )]);
        let (ok, errors) = check(&p, &variants(), obs, &known);
        let lines_ok: Vec<usize> = ok.iter().map(|c| c.observation.line).collect();
        assert_eq!(lines_ok, [1, 2, 5, 7]);
        assert_eq!(ok[1].variant, "concise");
        assert_eq!(ok[2].segment, "enterprise");
        assert_eq!(ok[3].segment, "enterprise");
        let messages: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(messages[0].0, 3);
        assert!(messages[0].1.contains("never exposed"));
        assert!(messages[1].1.contains("did you mean `concise`"));
        assert!(messages[2].1.contains("missing `segment`"));
    }
}
