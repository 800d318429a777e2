//! Portfolio files (`portfolios/NAME.yaml`) and the resolved portfolio every other part works on.
//!
//! Validation happens here, before anything touches the state: weights per segment must be finite, not
//! negative, and sum to 1 within [`WEIGHT_SUM_TOLERANCE`] (or are rescaled when the caller asks to
//! normalize, with a warning); variant keys and segment names are unique; rules are well formed; a
//! default segment exists. Resolving `version:` refs to version ids needs the state and is the caller's
//! job ([`ParsedFile::resolve`] takes a resolver), so this module stays free of SQL.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::hashing::HashVersion;
use super::segment::Rule;
use crate::diag::InputError;

/// How far a segment's weights may sum from 1 and still be taken as written.
pub const WEIGHT_SUM_TOLERANCE: f64 = 1e-9;

/// The name of the segment that applies when no rule matches.
pub const DEFAULT_SEGMENT: &str = "default";

/// A portfolio as recorded: refs resolved to version ids, weights per segment aligned with `variants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Portfolio {
    pub name: String,
    pub prompt: String,
    pub seed: String,
    pub hash_attribute: String,
    pub hash_version: u32,
    pub coverage: f64,
    pub variants: Vec<Variant>,
    /// Ordered; the first whose rule matches applies. The last is always the default segment (no rule).
    pub segments: Vec<Segment>,
    pub rebalance: RebalanceConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub key: String,
    /// As written: a label or a version id (prefix).
    pub version_ref: String,
    /// What `version_ref` resolved to when this portfolio version was recorded.
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub name: String,
    pub when: Option<Rule>,
    /// One weight per variant, in `Portfolio::variants` order.
    pub weights: Vec<f64>,
}

/// The `rebalance:` section, with defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebalanceConfig {
    /// The outcome metric to maximize.
    #[serde(default = "default_objective")]
    pub objective: String,
    /// utility = reward − cost_weight × cost_usd.
    #[serde(default)]
    pub cost_weight: f64,
    /// No active variant goes below this weight.
    #[serde(default = "default_min_weight")]
    pub min_weight: f64,
    /// No weight moves by more than this in one rebalance.
    #[serde(default = "default_max_shift")]
    pub max_shift: f64,
    /// A variant's weight stays put until it has this many outcomes in the window.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// Top-two Thompson sampling: the share that follows the leader; the rest follows the challenger.
    #[serde(default = "default_top_two_beta")]
    pub top_two_beta: f64,
    /// Posterior draws per rebalance: P(best) has a Monte Carlo error below 0.005 at 10,000.
    #[serde(default = "default_draws")]
    pub draws: u32,
    /// The observation window, e.g. `7d` or `36h`.
    #[serde(default = "default_window")]
    pub window: String,
}

fn default_objective() -> String {
    "reward".into()
}
fn default_min_weight() -> f64 {
    0.05
}
fn default_max_shift() -> f64 {
    0.2
}
fn default_min_samples() -> u64 {
    100
}
/// Russo's 0.5 is tuned for identifying the best arm; with two variants it never moves off 50/50. The
/// rebalancer's goal is reward with a challenger kept alive, so the leader gets 0.8 once it is clear.
fn default_top_two_beta() -> f64 {
    0.8
}
fn default_draws() -> u32 {
    10_000
}
fn default_window() -> String {
    "7d".into()
}

impl Default for RebalanceConfig {
    fn default() -> Self {
        RebalanceConfig {
            objective: default_objective(),
            cost_weight: 0.0,
            min_weight: default_min_weight(),
            max_shift: default_max_shift(),
            min_samples: default_min_samples(),
            top_two_beta: default_top_two_beta(),
            draws: default_draws(),
            window: default_window(),
        }
    }
}

impl Portfolio {
    pub fn hash_version(&self) -> HashVersion {
        HashVersion::from_number(self.hash_version).unwrap_or(HashVersion::V2)
    }

    pub fn variant_index(&self, key: &str) -> Option<usize> {
        self.variants.iter().position(|v| v.key == key)
    }

    pub fn segment_index(&self, name: &str) -> Option<usize> {
        self.segments.iter().position(|s| s.name == name)
    }

    /// Version ids this portfolio can serve (with a positive weight somewhere, or listed at all).
    pub fn uses_version(&self, version: &str) -> bool {
        self.variants.iter().any(|v| v.version == version)
    }
}

/// A window length: `7d`, `36h`, `90m`, or a bare number of days.
pub fn parse_window(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, unit_ms) = match text.char_indices().last()? {
        (i, 'd') => (&text[..i], 86_400_000),
        (i, 'h') => (&text[..i], 3_600_000),
        (i, 'm') => (&text[..i], 60_000),
        _ => (text, 86_400_000),
    };
    let n: i64 = number.trim().parse().ok()?;
    (n > 0).then_some(n * unit_ms)
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    name: String,
    prompt: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
    seed: Option<String>,
    hash_attribute: Option<String>,
    hash_version: Option<u32>,
    coverage: Option<f64>,
    variants: Vec<FileVariant>,
    #[serde(default)]
    segments: Vec<FileSegment>,
    #[serde(default)]
    rebalance: Option<RebalanceConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVariant {
    key: String,
    version: String,
    weight: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSegment {
    name: String,
    when: Option<crate::yaml::Value>,
    weights: BTreeMap<String, f64>,
}

/// A checked file whose variant refs still need resolving.
#[derive(Debug)]
pub struct ParsedFile {
    pub portfolio: Portfolio,
    /// Things the user should know but that do not stop the file (normalized weights).
    pub warnings: Vec<String>,
    locator: Locator,
}

impl ParsedFile {
    /// Parses and checks `text`. With `normalize`, weights that do not sum to 1 are rescaled (with a
    /// warning) instead of rejected.
    pub fn parse(text: &str, shown_as: &str, normalize: bool) -> Result<ParsedFile, InputError> {
        let locator = Locator { text: text.to_string(), path: shown_as.to_string() };
        let file: FileSpec = crate::yaml::from_str(text).map_err(|e| InputError::from_yaml(shown_as, e, 1))?;
        let mut warnings = Vec::new();
        let portfolio = build(file, &locator, normalize, &mut warnings)?;
        Ok(ParsedFile { portfolio, warnings, locator })
    }

    /// Resolves every variant's `version:` with `resolve(prompt, ref) -> Ok(version id) | Err((message,
    /// hint))`; an error points at the variant's line.
    pub fn resolve(
        mut self,
        mut resolve: impl FnMut(&str, &str) -> Result<String, (String, Option<String>)>,
    ) -> Result<(Portfolio, Vec<String>), InputError> {
        let prompt = self.portfolio.prompt.clone();
        for variant in &mut self.portfolio.variants {
            match resolve(&prompt, &variant.version_ref) {
                Ok(id) => variant.version = id,
                Err((message, hint)) => {
                    let mut e = self.locator.error_at_variant(
                        &variant.key,
                        "version",
                        format!("variant `{}`: {message}", variant.key),
                    );
                    e.hint = hint;
                    return Err(e);
                }
            }
        }
        Ok((self.portfolio, self.warnings))
    }
}

fn build(
    file: FileSpec,
    locator: &Locator,
    normalize: bool,
    warnings: &mut Vec<String>,
) -> Result<Portfolio, InputError> {
    check_name(&file.name, "portfolio name").map_err(|m| locator.error_at_key("name", m))?;
    let prompt = file.prompt.clone().unwrap_or_else(|| file.name.clone());
    let hash_version = file.hash_version.unwrap_or(2);
    if HashVersion::from_number(hash_version).is_none() {
        return Err(locator.error_at_key("hash_version", format!("hash_version {hash_version} is not 1 or 2")));
    }
    let coverage = file.coverage.unwrap_or(1.0);
    if !(coverage > 0.0 && coverage <= 1.0) {
        return Err(locator.error_at_key("coverage", format!("coverage must be in (0, 1], got {coverage}")));
    }
    let variants = build_variants(&file.variants, locator)?;
    let segments = build_segments(&file, &variants, locator, normalize, warnings)?;
    let rebalance = file.rebalance.unwrap_or_default();
    check_rebalance(&rebalance, variants.len()).map_err(|m| locator.error_at_key("rebalance", m))?;
    let hash_attribute = file.hash_attribute.unwrap_or_else(|| "id".into());
    if hash_attribute.is_empty() {
        return Err(locator.error_at_key("hash_attribute", "hash_attribute must not be empty".into()));
    }
    Ok(Portfolio {
        seed: file.seed.unwrap_or_else(|| file.name.clone()),
        name: file.name,
        prompt,
        hash_attribute,
        hash_version,
        coverage,
        variants,
        segments,
        rebalance,
    })
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(format!("{what} `{name}` must be 1–64 letters, digits, `-`, `_` or `.`")) }
}

fn build_variants(file: &[FileVariant], locator: &Locator) -> Result<Vec<Variant>, InputError> {
    if file.is_empty() {
        return Err(locator.error_at_key("variants", "a portfolio needs at least one variant".into()));
    }
    let mut seen = BTreeSet::new();
    for v in file {
        check_name(&v.key, "variant key").map_err(|m| locator.error_at_variant(&v.key, "key", m))?;
        if !seen.insert(v.key.as_str()) {
            return Err(locator
                .error_at_nth("key", &v.key, 1, format!("duplicate variant key `{}`", v.key))
                .with_hint("variant keys must be unique within a portfolio"));
        }
        if v.version.trim().is_empty() {
            return Err(locator.error_at_variant(
                &v.key,
                "version",
                format!("variant `{}` has an empty version", v.key),
            ));
        }
    }
    Ok(file
        .iter()
        .map(|v| Variant { key: v.key.clone(), version_ref: v.version.trim().to_string(), version: String::new() })
        .collect())
}

fn build_segments(
    file: &FileSpec,
    variants: &[Variant],
    locator: &Locator,
    normalize: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<Segment>, InputError> {
    let mut segments = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, s) in file.segments.iter().enumerate() {
        check_name(&s.name, "segment name").map_err(|m| locator.error_at_segment(&s.name, "name", m))?;
        if !seen.insert(s.name.as_str()) {
            return Err(locator.error_at_nth("name", &s.name, 1, format!("duplicate segment `{}`", s.name)));
        }
        let is_last = i + 1 == file.segments.len();
        let when = match (&s.when, s.name == DEFAULT_SEGMENT) {
            (Some(_), true) => {
                return Err(locator.error_at_segment(&s.name, "when", "the default segment takes no `when:`".into()));
            }
            (None, true) if !is_last => {
                return Err(locator.error_at_segment(&s.name, "name", "the default segment must come last".into()));
            }
            (None, true) => None,
            (None, false) => {
                return Err(locator
                    .error_at_segment(&s.name, "name", format!("segment `{}` has no `when:` rule", s.name))
                    .with_hint("every segment but the last one, `default`, needs a rule"));
            }
            (Some(when), false) => Some(Rule::from_yaml(when).map_err(|e| {
                let mut err = locator.error_at_segment_attr(&s.name, &e.attribute, e.message.clone());
                err.hint = e.hint.clone();
                err
            })?),
        };
        let weights = segment_weights(&s.name, &s.weights, variants, locator, normalize, warnings)?;
        segments.push(Segment { name: s.name.clone(), when, weights });
    }
    let variant_weights: Vec<Option<f64>> = file.variants.iter().map(|v| v.weight).collect();
    let has_default = segments.last().is_some_and(|s| s.when.is_none());
    match (variant_weights.iter().all(Option::is_some), variant_weights.iter().all(Option::is_none), has_default) {
        (true, _, true) => Err(locator.error_at_segment(
            DEFAULT_SEGMENT,
            "name",
            "the default weights are given twice: on the variants and in a `default` segment".into(),
        )),
        (true, _, false) => {
            let map: BTreeMap<String, f64> =
                file.variants.iter().map(|v| (v.key.clone(), v.weight.unwrap_or(0.0))).collect();
            let weights = segment_weights(DEFAULT_SEGMENT, &map, variants, locator, normalize, warnings)?;
            segments.push(Segment { name: DEFAULT_SEGMENT.into(), when: None, weights });
            Ok(segments)
        }
        (false, true, true) => Ok(segments),
        (false, true, false) => Err(locator
            .error_at_key("variants", "a default segment is required".into())
            .with_hint("give every variant a `weight`, or end `segments:` with `- name: default` and its weights")),
        (false, false, _) => {
            let key = &file.variants[variant_weights.iter().position(Option::is_none).unwrap_or(0)].key;
            Err(locator.error_at_variant(key, "key", format!("variant `{key}` has no weight but others do")))
        }
    }
}

fn segment_weights(
    segment: &str,
    given: &BTreeMap<String, f64>,
    variants: &[Variant],
    locator: &Locator,
    normalize: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<f64>, InputError> {
    let at = |key: &str, message: String| {
        if segment == DEFAULT_SEGMENT && locator.find_segment(segment).is_none() {
            locator.error_at_variant(key, "weight", message)
        } else {
            locator.error_at_segment_attr(segment, key, message)
        }
    };
    for (key, &weight) in given {
        if !variants.iter().any(|v| v.key == *key) {
            let near = crate::suggest::nearest(key, variants.iter().map(|v| v.key.as_str()));
            let mut e = at(key, format!("segment `{segment}` weighs unknown variant `{key}`"));
            e.hint = Some(match near {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("variants: {}", variants.iter().map(|v| v.key.as_str()).collect::<Vec<_>>().join(", ")),
            });
            return Err(e);
        }
        if !weight.is_finite() || weight < 0.0 {
            return Err(at(key, format!("segment `{segment}`: weight of `{key}` is {weight}; weights must be ≥ 0")));
        }
    }
    let weights: Vec<f64> = variants.iter().map(|v| given.get(&v.key).copied().unwrap_or(0.0)).collect();
    let sum: f64 = weights.iter().sum();
    if (sum - 1.0).abs() <= WEIGHT_SUM_TOLERANCE {
        return Ok(weights);
    }
    if sum <= 0.0 {
        return Err(at(
            variants[0].key.as_str(),
            format!("segment `{segment}`: weights sum to 0; at least one variant needs a positive weight"),
        ));
    }
    let normalized: Vec<f64> = weights.iter().map(|w| w / sum).collect();
    let shown = variants
        .iter()
        .zip(&normalized)
        .map(|(v, w)| format!("{}: {}", v.key, (w * 1e6).round() / 1e6))
        .collect::<Vec<_>>()
        .join(", ");
    if normalize {
        warnings.push(format!("segment `{segment}`: weights summed to {sum}; normalized to {shown}"));
        return Ok(normalized);
    }
    let first =
        variants.iter().zip(&weights).find(|(_, w)| **w > 0.0).map_or(variants[0].key.as_str(), |(v, _)| &v.key);
    Err(at(first, format!("segment `{segment}`: weights sum to {sum}, not 1"))
        .with_hint(format!("fix the weights, or pass --normalize to rescale them ({shown})")))
}

fn check_rebalance(config: &RebalanceConfig, variants: usize) -> Result<(), String> {
    let unit = |x: f64| (0.0..=1.0).contains(&x);
    if !unit(config.min_weight) || config.min_weight * variants as f64 > 1.0 {
        return Err(format!(
            "rebalance.min_weight {} is impossible with {variants} variants (at most {})",
            config.min_weight,
            1.0 / variants as f64
        ));
    }
    if !unit(config.max_shift) {
        return Err(format!("rebalance.max_shift must be in [0, 1], got {}", config.max_shift));
    }
    if !(config.top_two_beta > 0.0 && config.top_two_beta <= 1.0) {
        return Err(format!("rebalance.top_two_beta must be in (0, 1], got {}", config.top_two_beta));
    }
    if !(config.cost_weight >= 0.0 && config.cost_weight.is_finite()) {
        return Err(format!("rebalance.cost_weight must be ≥ 0, got {}", config.cost_weight));
    }
    if config.draws < 100 {
        return Err(format!("rebalance.draws must be at least 100, got {}", config.draws));
    }
    if parse_window(&config.window).is_none() {
        return Err(format!("rebalance.window `{}` is not a duration like 7d, 36h or 90m", config.window));
    }
    if config.objective.trim().is_empty() {
        return Err("rebalance.objective must name an outcome field".into());
    }
    Ok(())
}

/// Finds where things are written in the file, for `file:line:col` on errors found after parsing.
#[derive(Debug)]
struct Locator {
    text: String,
    path: String,
}

impl Locator {
    fn error(&self, offset: Option<usize>, message: String) -> InputError {
        let e = InputError::new(&self.path, message);
        match offset {
            Some(offset) => {
                let (line, column) = crate::diag::line_col(&self.text, offset);
                e.at(line, column)
            }
            None => e,
        }
    }

    /// Byte offset of the `n`th (0-based) `field: value` entry.
    fn find_nth(&self, field: &str, value: &str, n: usize) -> Option<usize> {
        let pattern = format!(
            r#"(?m)(?:^|[\s{{,\-])({}\s*:\s*["']?{}["']?)\s*(?:$|[,}}\s#])"#,
            regex::escape(field),
            regex::escape(value)
        );
        let re = regex::Regex::new(&pattern).ok()?;
        re.captures_iter(&self.text).nth(n).and_then(|c| c.get(1)).map(|m| m.start())
    }

    fn find_key(&self, key: &str) -> Option<usize> {
        let re = regex::Regex::new(&format!(r"(?m)^{}\s*:", regex::escape(key))).ok()?;
        re.find(&self.text).map(|m| m.start())
    }

    fn find_segment(&self, name: &str) -> Option<usize> {
        let segments = self.find_key("segments")?;
        self.find_nth("name", name, 0).filter(|&at| at > segments).or_else(|| {
            let re = regex::Regex::new(&format!(r#"name\s*:\s*["']?{}["']?"#, regex::escape(name))).ok()?;
            re.find_at(&self.text, segments).map(|m| m.start())
        })
    }

    /// The first `word` (as a key, `word:`) at or after `from`.
    fn find_word_after(&self, from: usize, word: &str) -> Option<usize> {
        let re = regex::Regex::new(&format!(r#"["']?\b{}\b["']?\s*:"#, regex::escape(word))).ok()?;
        re.find_at(&self.text, from).map(|m| m.start())
    }

    fn error_at_key(&self, key: &str, message: String) -> InputError {
        self.error(self.find_key(key), message)
    }

    fn error_at_nth(&self, field: &str, value: &str, n: usize, message: String) -> InputError {
        self.error(self.find_nth(field, value, n), message)
    }

    fn error_at_variant(&self, key: &str, field: &str, message: String) -> InputError {
        let start = self.find_nth("key", key, 0);
        let at = match start {
            Some(start) if field != "key" => self.find_word_after(start, field).or(Some(start)),
            other => other,
        };
        self.error(at, message)
    }

    fn error_at_segment(&self, name: &str, field: &str, message: String) -> InputError {
        let start = self.find_segment(name);
        let at = match start {
            Some(start) if field != "name" => self.find_word_after(start, field).or(Some(start)),
            other => other,
        };
        self.error(at, message)
    }

    fn error_at_segment_attr(&self, name: &str, attribute: &str, message: String) -> InputError {
        let start = self.find_segment(name);
        let at = match start {
            Some(start) if !attribute.is_empty() => self.find_word_after(start, attribute).or(Some(start)),
            other => other,
        };
        self.error(at, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
name: support-reply
prompt: support-reply
seed: support-reply
hash_attribute: user_id
hash_version: 2
coverage: 1.0
variants:
  - { key: control, version: production, weight: 0.5 }
  - { key: concise, version: 3f2a9c1b7d04, weight: 0.5 }
segments:
  - name: enterprise
    when: { plan: enterprise }
    weights: { control: 0.8, concise: 0.2 }
rebalance:
  objective: resolved
  cost_weight: 0.0
  min_weight: 0.05
  max_shift: 0.2
  min_samples: 100
";

    fn parse(text: &str) -> Result<ParsedFile, InputError> {
        ParsedFile::parse(text, "portfolios/p.yaml", false)
    }

    #[test]
    fn the_formats_example_parses_with_a_default_segment_last() {
        let p = parse(FILE).unwrap().portfolio;
        assert_eq!(p.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["enterprise", "default"]);
        assert_eq!(p.segments[0].weights, [0.8, 0.2]);
        assert_eq!(p.segments[1].weights, [0.5, 0.5]);
        assert_eq!(p.rebalance.objective, "resolved");
        assert_eq!(p.hash_version, 2);
    }

    #[test]
    fn weights_must_sum_to_one_unless_normalized() {
        let text = FILE.replace("weight: 0.5 }\n  - { key: concise", "weight: 0.6 }\n  - { key: concise");
        let e = parse(&text).unwrap_err();
        assert_eq!((e.line, e.column), (Some(8), Some(42)), "points at the weight");
        assert!(e.message.contains("weights sum to 1.1, not 1"), "{e}");
        assert!(e.hint.unwrap().contains("--normalize"));
        let parsed = ParsedFile::parse(&text, "p.yaml", true).unwrap();
        assert_eq!(parsed.warnings.len(), 1);
        let w = &parsed.portfolio.segments[1].weights;
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bad_files_point_at_the_culprit() {
        let e = parse(&FILE.replace("weight: 0.5 }\n  - { key: concise", "weight: -0.5 }\n  - { key: concise"))
            .unwrap_err();
        assert!(e.message.contains("weights must be ≥ 0"), "{e}");
        let e = parse(&FILE.replace("key: concise", "key: control")).unwrap_err();
        assert_eq!(e.message, "duplicate variant key `control`");
        assert_eq!(e.line, Some(9));
        let e = parse(&FILE.replace("plan: enterprise", "plan: { like: ent }")).unwrap_err();
        assert!(e.message.contains("unknown operator `like`"), "{e}");
        assert_eq!(e.line, Some(12));
        let e = parse(&FILE.replace("concise: 0.2", "consice: 0.2")).unwrap_err();
        assert!(e.hint.unwrap().contains("did you mean `concise`"));
        let e = parse(&FILE.replace("coverage: 1.0", "coverag: 1.0")).unwrap_err();
        assert!(e.message.contains("did you mean `coverage`"), "{e}");
    }

    #[test]
    fn a_default_segment_is_required() {
        let text = FILE.replace(", weight: 0.5 }", " }");
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("default segment is required"), "{e}");
        let with_default = text.replace("rebalance:", "  - name: default\n    weights: { control: 1 }\nrebalance:");
        let p = parse(&with_default).unwrap().portfolio;
        assert_eq!(p.segments[1].weights, [1.0, 0.0]);
    }

    #[test]
    fn resolve_reports_the_variant_line() {
        let parsed = parse(FILE).unwrap();
        let e = parsed
            .resolve(|_, r| if r == "production" { Ok("aaaaaaaaaaaa".into()) } else { Err(("missing".into(), None)) })
            .unwrap_err();
        assert_eq!(e.line, Some(9));
        assert!(e.message.starts_with("variant `concise`"), "{e}");
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("7d"), Some(7 * 86_400_000));
        assert_eq!(parse_window("36h"), Some(36 * 3_600_000));
        assert_eq!(parse_window("14"), Some(14 * 86_400_000));
        assert_eq!(parse_window("0d"), None);
        assert_eq!(parse_window("week"), None);
    }
}
