//! Every row of `stats.json`, within the tolerances its `meta.tolerance` states.

use promptctl::eval::stats::{mcnemar_exact, pass_at_k, pass_hat_k, wilson_interval};
use promptctl::portfolio::srm::sample_ratio_mismatch;
use promptctl::stats::distributions::beta_quantile;
use serde_json::Value;

use crate::vector_files::load;

/// `|got − expected| <= max(abs, rel × |expected|)`, the rule of `tests/vectors/README.md`.
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    abs: f64,
    rel: f64,
}

impl Tolerance {
    fn from_meta(section: &Value, abs_key: &str, rel_key: &str) -> Self {
        let read = |key: &str| section.get(key).map_or(0.0, |v| v.as_f64().unwrap());
        Tolerance { abs: read(abs_key), rel: read(rel_key) }
    }

    fn accepts(self, got: f64, expected: f64) -> bool {
        (got - expected).abs() <= self.abs.max(self.rel * expected.abs())
    }
}

struct Section {
    rows: Vec<Value>,
    tolerance: Value,
}

fn section(key: &str, expected_rows: usize) -> Section {
    let vectors = load("stats.json");
    let rows = vectors[key].as_array().unwrap().clone();
    assert_eq!(rows.len(), expected_rows, "row count of {key}");
    Section { rows, tolerance: vectors["meta"]["tolerance"][key].clone() }
}

fn uint(row: &Value, key: &str) -> u64 {
    row[key].as_u64().unwrap_or_else(|| panic!("{key} in {row}"))
}

fn float(row: &Value, key: &str) -> f64 {
    row[key].as_f64().unwrap_or_else(|| panic!("{key} in {row}"))
}

/// Collects every mismatch so a failure lists all bad rows at once.
#[derive(Default)]
struct Mismatches(Vec<String>);

impl Mismatches {
    fn check(&mut self, row: &Value, what: &str, tolerance: Tolerance, got: f64, expected: f64) {
        if !tolerance.accepts(got, expected) {
            let error = (got - expected).abs();
            self.0.push(format!(
                "{row}: {what} = {got:e}, expected {expected:e} (error {error:e}, allowed {tolerance:?})"
            ));
        }
    }

    fn assert_none(self) {
        assert!(self.0.is_empty(), "{}", self.0.join("\n"));
    }
}

#[test]
fn pass_at_k_matches_human_eval() {
    let section = section("pass_at_k", 42);
    let tolerance = Tolerance::from_meta(&section.tolerance, "abs", "rel");
    let mut mismatches = Mismatches::default();
    for row in &section.rows {
        let got = pass_at_k(uint(row, "n"), uint(row, "c"), uint(row, "k")).unwrap();
        mismatches.check(row, "pass@k", tolerance, got, float(row, "expected"));
    }
    mismatches.assert_none();
}

#[test]
fn pass_hat_k_matches_tau_bench() {
    let section = section("pass_hat_k", 40);
    let tolerance = Tolerance::from_meta(&section.tolerance, "abs", "rel");
    let mut mismatches = Mismatches::default();
    for row in &section.rows {
        let got = pass_hat_k(uint(row, "n"), uint(row, "c"), uint(row, "k")).unwrap();
        mismatches.check(row, "pass^k", tolerance, got, float(row, "expected"));
    }
    mismatches.assert_none();
}

#[test]
fn wilson_matches_statsmodels() {
    let section = section("wilson", 40);
    let tolerance = Tolerance::from_meta(&section.tolerance, "abs", "rel");
    let mut mismatches = Mismatches::default();
    for row in &section.rows {
        let interval = wilson_interval(uint(row, "successes"), uint(row, "trials"), float(row, "alpha")).unwrap();
        mismatches.check(row, "lower", tolerance, interval.lower, float(row, "lower"));
        mismatches.check(row, "upper", tolerance, interval.upper, float(row, "upper"));
    }
    mismatches.assert_none();
}

#[test]
fn mcnemar_exact_matches_statsmodels() {
    let section = section("mcnemar_exact", 40);
    assert_eq!(section.tolerance["statistic_exact"], Value::Bool(true));
    let p_tolerance = Tolerance::from_meta(&section.tolerance, "pvalue_abs", "pvalue_rel");
    let mut mismatches = Mismatches::default();
    for row in &section.rows {
        let test = mcnemar_exact(uint(row, "b"), uint(row, "c"));
        let exact = Tolerance { abs: 0.0, rel: 0.0 };
        mismatches.check(row, "statistic", exact, test.statistic as f64, float(row, "statistic"));
        mismatches.check(row, "p", p_tolerance, test.p_value, float(row, "pvalue"));
    }
    mismatches.assert_none();
}

#[test]
fn srm_chi_square_matches_scipy() {
    let section = section("srm_chisquare", 40);
    let statistic_tolerance = Tolerance::from_meta(&section.tolerance, "statistic_abs", "statistic_rel");
    let p_tolerance = Tolerance::from_meta(&section.tolerance, "pvalue_abs", "pvalue_rel");
    let mut mismatches = Mismatches::default();
    for row in &section.rows {
        let observed: Vec<u64> = row["observed"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let weights: Vec<f64> = row["weights"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let test = sample_ratio_mismatch(&observed, &weights).unwrap();
        assert_eq!(u64::from(test.df), uint(row, "df"), "df of {row}");
        mismatches.check(row, "statistic", statistic_tolerance, test.statistic, float(row, "statistic"));
        mismatches.check(row, "p", p_tolerance, test.p_value, float(row, "pvalue"));
    }
    mismatches.assert_none();
}

#[test]
fn beta_quantile_matches_scipy() {
    let section = section("beta_ppf", 40);
    let tolerance = Tolerance::from_meta(&section.tolerance, "abs", "rel");
    let mut mismatches = Mismatches::default();
    for row in &section.rows {
        let got = beta_quantile(float(row, "a"), float(row, "b"), float(row, "q")).unwrap();
        mismatches.check(row, "quantile", tolerance, got, float(row, "expected"));
    }
    mismatches.assert_none();
}

#[test]
fn tolerances_are_the_documented_ones() {
    // The tests read the tolerances from the file; pin them so an edited file cannot loosen a check.
    let meta = &load("stats.json")["meta"]["tolerance"];
    let expected: Value = serde_json::json!({
        "pass_at_k": {"abs": 1e-12},
        "pass_hat_k": {"abs": 1e-12},
        "wilson": {"abs": 1e-12},
        "mcnemar_exact": {"statistic_exact": true, "pvalue_rel": 1e-9, "pvalue_abs": 1e-15},
        "srm_chisquare": {"statistic_rel": 1e-9, "statistic_abs": 1e-9, "pvalue_rel": 1e-6, "pvalue_abs": 1e-12},
        "beta_ppf": {"rel": 1e-9, "abs": 1e-12}
    });
    assert_eq!(meta, &expected);
}
