//! Every row of `growthbook/cases.json` and `growthbook/nonascii.json`, compared as upstream's
//! `json.test.ts` compares them (see `tests/vectors/growthbook/README.md`).

use promptctl::portfolio::allocate::{
    BucketRange, Namespace, bucket_ranges, choose_variation, equal_weights, in_namespace,
};
use promptctl::portfolio::hashing::hash;
use serde_json::Value;

use crate::vector_files::load;

fn rows<'a>(file: &'a Value, key: &str, expected_rows: usize) -> &'a [Value] {
    let rows = file[key].as_array().unwrap();
    assert_eq!(rows.len(), expected_rows, "row count of {key}");
    rows
}

fn floats(value: &Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

fn ranges(value: &Value) -> Vec<BucketRange> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let pair = floats(pair);
            BucketRange::from([pair[0], pair[1]])
        })
        .collect()
}

/// Upstream floors both sides to 8 decimals before comparing ranges and weights.
fn floor8(x: f64) -> f64 {
    (x * 1e8).floor() / 1e8
}

/// A hash row `[seed, value, version, expected | null]`, compared bit for bit.
fn check_hash_rows(rows: &[Value]) {
    let mut mismatches = Vec::new();
    for row in rows {
        let seed = row[0].as_str().unwrap();
        let value = row[1].as_str().unwrap();
        let version = u32::try_from(row[2].as_u64().unwrap()).unwrap();
        let expected = row[3].as_f64();
        let got = hash(seed, value, version);
        if got.map(f64::to_bits) != expected.map(f64::to_bits) {
            mismatches.push(format!("{row}: got {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn spec_version_is_the_one_the_code_follows() {
    assert_eq!(load("growthbook/cases.json")["specVersion"], Value::from("0.8.0"));
}

#[test]
fn hash_matches_upstream_cases() {
    check_hash_rows(rows(&load("growthbook/cases.json"), "hash", 15));
}

#[test]
fn hash_matches_the_js_sdk_on_non_ascii_strings() {
    check_hash_rows(rows(&load("growthbook/nonascii.json"), "hash", 12));
}

#[test]
fn bucket_ranges_match_upstream_cases() {
    let file = load("growthbook/cases.json");
    for row in rows(&file, "getBucketRange", 13) {
        let args = &row[1];
        let num_variations = usize::try_from(args[0].as_u64().unwrap()).unwrap();
        let coverage = args[1].as_f64().unwrap();
        let weights = (!args[2].is_null()).then(|| floats(&args[2]));
        let got: Vec<[f64; 2]> = bucket_ranges(num_variations, coverage, weights.as_deref())
            .into_iter()
            .map(|r| [floor8(r.start), floor8(r.end)])
            .collect();
        let expected: Vec<[f64; 2]> = ranges(&row[2]).into_iter().map(|r| [floor8(r.start), floor8(r.end)]).collect();
        assert_eq!(got, expected, "{}", row[0]);
    }
}

#[test]
fn choose_variation_matches_upstream_cases() {
    let file = load("growthbook/cases.json");
    for row in rows(&file, "chooseVariation", 13) {
        let n = row[1].as_f64().unwrap();
        let expected = row[3].as_i64().unwrap();
        let got = choose_variation(n, &ranges(&row[2]));
        let got = got.map_or(-1, |i| i64::try_from(i).unwrap());
        assert_eq!(got, expected, "{}", row[0]);
    }
}

#[test]
fn in_namespace_matches_upstream_cases() {
    let file = load("growthbook/cases.json");
    for row in rows(&file, "inNamespace", 16) {
        let id = row[1].as_str().unwrap();
        let namespace = Namespace {
            id: row[2][0].as_str().unwrap().to_owned(),
            start: row[2][1].as_f64().unwrap(),
            end: row[2][2].as_f64().unwrap(),
        };
        let expected = row[3].as_bool().unwrap();
        assert_eq!(in_namespace(id, &namespace), expected, "{}", row[0]);
    }
}

#[test]
fn equal_weights_match_upstream_cases() {
    let file = load("growthbook/cases.json");
    for row in rows(&file, "getEqualWeights", 6) {
        // A count is a usize here, so the SDK's "n <= 0 gives []" rows are asked for 0 variations.
        let n = usize::try_from(row[0].as_i64().unwrap()).unwrap_or(0);
        let got: Vec<f64> = equal_weights(n).into_iter().map(floor8).collect();
        let expected: Vec<f64> = floats(&row[1]).into_iter().map(floor8).collect();
        assert_eq!(got, expected, "n = {}", row[0]);
    }
}

#[test]
fn float_boundaries_match_the_js_sdk() {
    let file = load("growthbook/nonascii.json");
    for row in rows(&file, "assignFromWeights", 43) {
        let weights = floats(&row[1]);
        let n = row[2].as_f64().unwrap();
        let expected = usize::try_from(row[3].as_u64().unwrap()).unwrap();
        let ranges = bucket_ranges(weights.len(), 1.0, Some(&weights));
        assert_eq!(choose_variation(n, &ranges), Some(expected), "{}", row[0]);
    }
}
