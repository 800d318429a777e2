//! Segment rules: which units a segment's weights apply to.
//!
//! A rule is the `when:` map of a segment: attribute name → condition, all of which must hold. Unit
//! attributes are strings (as `--attr K=V` gives them). The grammar, with its GrowthBook translation:
//!
//! | YAML | holds when | GrowthBook condition |
//! |---|---|---|
//! | `plan: enterprise` (a scalar) | the attribute equals the text | `"enterprise"` |
//! | `country: [DE, AT]` (a list) | the attribute is one of them | `{"$in": [...]}` |
//! | `plan: { eq: x }` / `{ ne: x }` | equal / not equal (a missing attribute is "not equal") | `$eq` / `$ne` |
//! | `tier: { in: [...] }` / `{ not_in: [...] }` | member / not a member (missing is "not a member") | `$in` / `$nin` |
//! | `seats: { gt: 50 }`, `gte`, `lt`, `lte` | the attribute, read as a number, compares | `$exists` + `$gt`… |
//! | `email: { regex: "@acme\\.com$" }` | the regex finds a match in the attribute | `$exists` + `$regex` |
//! | `beta: { exists: true }` | the attribute is present (or absent, for `false`) | `$exists` |
//!
//! Numbers in attributes are read the way JavaScript's `Number()` reads a string (surrounding
//! whitespace ignored, `""` is 0, `0x1f` is hexadecimal), because that is what a GrowthBook SDK does
//! when it compares a string attribute with a number; a string that is not a number matches no
//! comparison. Equality and membership compare text exactly (no case folding, no Unicode
//! normalization). YAML numbers and booleans in rules are compared by their text (`seats: 50` is "50").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The operators a condition map may use (documented in docs/portfolios.md).
pub const OPERATORS: &[&str] = &["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "regex", "exists"];

/// One test on one attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "value")]
pub enum Op {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    Regex(String),
    Exists(bool),
}

/// All tests on one attribute (`seats: { gte: 10, lt: 50 }` is one condition with two ops).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub attribute: String,
    pub ops: Vec<Op>,
}

/// A segment's `when:`: every condition must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub conditions: Vec<Condition>,
}

/// Why a `when:` map could not be read; `path` says where inside it (`seats.gte`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    pub attribute: String,
    pub message: String,
    pub hint: Option<String>,
}

impl RuleError {
    fn new(attribute: &str, message: impl Into<String>) -> Self {
        RuleError { attribute: attribute.to_string(), message: message.into(), hint: None }
    }
}

impl Rule {
    /// Reads a `when:` value (a YAML mapping) into a rule, checking operators, operand types and regexes.
    pub fn from_yaml(when: &crate::yaml::Value) -> Result<Rule, RuleError> {
        let crate::yaml::Value::Mapping(map) = when else {
            return Err(RuleError::new("", "`when:` must be a map of attribute: condition"));
        };
        if map.is_empty() {
            return Err(RuleError::new("", "`when:` is empty; a segment without conditions is the default segment"));
        }
        let mut conditions = Vec::new();
        for (key, value) in map {
            let attribute = scalar_text(key).ok_or_else(|| RuleError::new("", "attribute names must be text"))?;
            check_attribute_name(&attribute)?;
            conditions.push(Condition { ops: ops_from_yaml(&attribute, value)?, attribute });
        }
        Ok(Rule { conditions })
    }

    /// Whether `attributes` satisfy every condition.
    pub fn matches(&self, attributes: &dyn Attributes) -> bool {
        self.conditions.iter().all(|c| c.ops.iter().all(|op| op_holds(op, attributes.get(&c.attribute))))
    }

    /// The rule as a GrowthBook targeting condition (Mongo-style), evaluated the same way by the SDKs.
    pub fn to_growthbook(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for condition in &self.conditions {
            object.insert(condition.attribute.clone(), growthbook_condition(&condition.ops));
        }
        serde_json::Value::Object(object)
    }
}

/// Attribute lookup, so that callers can keep attributes in whatever map they have.
pub trait Attributes {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Attributes for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// Attributes plus the unit id under the hash attribute's name (as an SDK sees it).
pub struct WithUnit<'a> {
    pub attributes: &'a dyn Attributes,
    pub hash_attribute: &'a str,
    pub unit: &'a str,
}

impl Attributes for WithUnit<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        if name == self.hash_attribute { Some(self.unit) } else { self.attributes.get(name) }
    }
}

/// No attributes at all.
pub struct NoAttributes;

impl Attributes for NoAttributes {
    fn get(&self, _: &str) -> Option<&str> {
        None
    }
}

/// Dots would be read as nested paths by GrowthBook, and `$` starts an operator there.
fn check_attribute_name(name: &str) -> Result<(), RuleError> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Ok(());
    }
    Err(RuleError {
        attribute: name.to_string(),
        message: format!("`{name}` is not a valid attribute name"),
        hint: Some("attribute names start with a letter or `_` and have letters, digits, `_` or `-`".into()),
    })
}

fn ops_from_yaml(attribute: &str, value: &crate::yaml::Value) -> Result<Vec<Op>, RuleError> {
    use crate::yaml::Value;
    match value {
        Value::Sequence(items) => Ok(vec![Op::In(text_list(attribute, "a list", items)?)]),
        Value::Mapping(map) => {
            if map.is_empty() {
                return Err(RuleError::new(attribute, format!("`{attribute}` has an empty condition map")));
            }
            map.iter()
                .map(|(op, operand)| {
                    let op = scalar_text(op).unwrap_or_default();
                    op_from_yaml(attribute, &op, operand)
                })
                .collect()
        }
        scalar => match scalar_text(scalar) {
            Some(text) => Ok(vec![Op::Eq(text)]),
            None => Err(RuleError::new(attribute, format!("`{attribute}` needs a value, a list or an operator map"))),
        },
    }
}

fn op_from_yaml(attribute: &str, op: &str, operand: &crate::yaml::Value) -> Result<Op, RuleError> {
    use crate::yaml::Value;
    let where_ = format!("{attribute}.{op}");
    let text = || scalar_text(operand).ok_or_else(|| RuleError::new(attribute, format!("`{where_}` needs a value")));
    let number = || match operand {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()).ok_or_else(|| not_a_number(attribute, &where_)),
        _ => Err(not_a_number(attribute, &where_)),
    };
    let list = || match operand {
        Value::Sequence(items) => text_list(attribute, &where_, items),
        _ => Err(RuleError::new(attribute, format!("`{where_}` needs a list"))),
    };
    Ok(match op {
        "eq" => Op::Eq(text()?),
        "ne" => Op::Ne(text()?),
        "in" => Op::In(list()?),
        "not_in" => Op::NotIn(list()?),
        "gt" => Op::Gt(number()?),
        "gte" => Op::Gte(number()?),
        "lt" => Op::Lt(number()?),
        "lte" => Op::Lte(number()?),
        "regex" => {
            let pattern = text()?;
            regex::Regex::new(&pattern).map_err(|e| {
                RuleError::new(attribute, format!("`{where_}` is not a valid regex: {}", first_line(&e.to_string())))
            })?;
            Op::Regex(pattern)
        }
        "exists" => match operand {
            Value::Bool(b) => Op::Exists(*b),
            _ => return Err(RuleError::new(attribute, format!("`{where_}` needs true or false"))),
        },
        unknown => {
            let mut e = RuleError::new(attribute, format!("unknown operator `{unknown}` in `{attribute}`"));
            let near = crate::suggest::nearest(unknown.trim_start_matches('$'), OPERATORS.iter().copied());
            let valid = OPERATORS.join(", ");
            e.hint = Some(match near {
                Some(near) => format!("did you mean `{near}`? operators: {valid}"),
                None => format!("operators: {valid}"),
            });
            return Err(e);
        }
    })
}

fn not_a_number(attribute: &str, where_: &str) -> RuleError {
    RuleError::new(attribute, format!("`{where_}` needs a number"))
}

fn text_list(attribute: &str, what: &str, items: &[crate::yaml::Value]) -> Result<Vec<String>, RuleError> {
    if items.is_empty() {
        return Err(RuleError::new(attribute, format!("`{attribute}`: {what} must not be empty")));
    }
    items
        .iter()
        .map(|item| {
            scalar_text(item)
                .ok_or_else(|| RuleError::new(attribute, format!("`{attribute}`: {what} may hold only plain values")))
        })
        .collect()
}

/// A YAML scalar as the text a string attribute would have to equal.
fn scalar_text(value: &crate::yaml::Value) -> Option<String> {
    use crate::yaml::Value;
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text).trim()
}

fn op_holds(op: &Op, value: Option<&str>) -> bool {
    match (op, value) {
        (Op::Exists(expected), v) => v.is_some() == *expected,
        (Op::Ne(x), v) => v != Some(x.as_str()),
        (Op::NotIn(list), v) => !v.is_some_and(|v| list.iter().any(|x| x == v)),
        (_, None) => false,
        (Op::Eq(x), Some(v)) => v == x,
        (Op::In(list), Some(v)) => list.iter().any(|x| x == v),
        (Op::Gt(x), Some(v)) => js_number(v) > *x,
        (Op::Gte(x), Some(v)) => js_number(v) >= *x,
        (Op::Lt(x), Some(v)) => js_number(v) < *x,
        (Op::Lte(x), Some(v)) => js_number(v) <= *x,
        // Compiled once per call here; `Assigner` keeps compiled rules for hot paths.
        (Op::Regex(pattern), Some(v)) => regex::Regex::new(pattern).is_ok_and(|re| re.is_match(v)),
    }
}

/// JavaScript's `Number(text)` (ECMAScript StringToNumber): NaN when the text is not a number.
pub fn js_number(text: &str) -> f64 {
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if trimmed.is_empty() {
        return 0.0;
    }
    let radix = |prefix: &[&str], radix: u32| {
        prefix.iter().find_map(|p| trimmed.strip_prefix(p)).map(|digits| {
            if digits.is_empty() {
                return f64::NAN;
            }
            digits
                .chars()
                .try_fold(0f64, |acc, c| c.to_digit(radix).map(|d| acc * f64::from(radix) + f64::from(d)))
                .unwrap_or(f64::NAN)
        })
    };
    if let Some(n) = radix(&["0x", "0X"], 16).or_else(|| radix(&["0o", "0O"], 8)).or_else(|| radix(&["0b", "0B"], 2)) {
        return n;
    }
    match trimmed {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    if is_decimal_literal(trimmed) { trimmed.parse().unwrap_or(f64::NAN) } else { f64::NAN }
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`: what Rust's parser also accepts,
/// minus its `inf`/`nan` spellings that JavaScript does not know.
fn is_decimal_literal(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// GrowthBook's evaluation of a plain string condition is `value + "" === condition`, which an absent
/// attribute (read as `null`) satisfies for the text "null"; `$eq` is used there instead.
fn growthbook_condition(ops: &[Op]) -> serde_json::Value {
    use serde_json::json;
    if let [Op::Eq(text)] = ops
        && text != "null"
    {
        return json!(text);
    }
    let mut object = serde_json::Map::new();
    for op in ops {
        let (key, value) = match op {
            Op::Eq(x) => ("$eq", json!(x)),
            Op::Ne(x) => ("$ne", json!(x)),
            Op::In(list) => ("$in", with_numeric_twins(list)),
            Op::NotIn(list) => ("$nin", with_numeric_twins(list)),
            Op::Gt(x) => ("$gt", json!(x)),
            Op::Gte(x) => ("$gte", json!(x)),
            Op::Lt(x) => ("$lt", json!(x)),
            Op::Lte(x) => ("$lte", json!(x)),
            Op::Regex(x) => ("$regex", json!(x)),
            Op::Exists(x) => ("$exists", json!(x)),
        };
        object.insert(key.to_string(), value);
        // An SDK reads a missing attribute as null, and `null < 5` is true in JavaScript; a regex would
        // test the text "null". Requiring presence makes the SDK agree with `matches`.
        if matches!(op, Op::Gt(_) | Op::Gte(_) | Op::Lt(_) | Op::Lte(_) | Op::Regex(_)) {
            object.insert("$exists".to_string(), json!(true));
        }
    }
    serde_json::Value::Object(object)
}

/// `$in` compares with `===`: an app that passes `seats` as a number rather than a string should
/// still match `["50"]`, so numeric texts are listed twice (a string attribute matches the text only).
fn with_numeric_twins(list: &[String]) -> serde_json::Value {
    let mut values: Vec<serde_json::Value> = list.iter().map(|s| serde_json::json!(s)).collect();
    for text in list {
        if let Ok(n) = text.parse::<i64>()
            && n.to_string() == *text
        {
            values.push(serde_json::json!(n));
        }
    }
    serde_json::Value::Array(values)
}

/// A rule with its regexes compiled, for assigning many units.
pub struct CompiledRule {
    conditions: Vec<(String, Vec<CompiledOp>)>,
}

enum CompiledOp {
    Plain(Op),
    Regex(regex::Regex),
}

impl CompiledRule {
    pub fn new(rule: &Rule) -> Result<Self, regex::Error> {
        let conditions = rule
            .conditions
            .iter()
            .map(|c| {
                let ops = c
                    .ops
                    .iter()
                    .map(|op| match op {
                        Op::Regex(pattern) => regex::Regex::new(pattern).map(CompiledOp::Regex),
                        other => Ok(CompiledOp::Plain(other.clone())),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((c.attribute.clone(), ops))
            })
            .collect::<Result<Vec<_>, regex::Error>>()?;
        Ok(CompiledRule { conditions })
    }

    pub fn matches(&self, attributes: &dyn Attributes) -> bool {
        self.conditions.iter().all(|(attribute, ops)| {
            let value = attributes.get(attribute);
            ops.iter().all(|op| match op {
                CompiledOp::Plain(op) => op_holds(op, value),
                CompiledOp::Regex(re) => value.is_some_and(|v| re.is_match(v)),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Result<Rule, RuleError> {
        Rule::from_yaml(&crate::yaml::value_from_str(yaml).unwrap())
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn scalars_lists_and_operators() {
        let r = rule("plan: enterprise\ncountry: [DE, AT]\nseats: { gte: 50, lt: 500 }\n").unwrap();
        assert!(r.matches(&attrs(&[("plan", "enterprise"), ("country", "AT"), ("seats", "50")])));
        assert!(!r.matches(&attrs(&[("plan", "enterprise"), ("country", "FR"), ("seats", "50")])));
        assert!(!r.matches(&attrs(&[("plan", "enterprise"), ("country", "DE"), ("seats", "500")])));
        assert!(!r.matches(&attrs(&[("plan", "enterprise"), ("country", "DE")])), "missing attribute");
        assert!(!r.matches(&attrs(&[("plan", "enterprise"), ("country", "DE"), ("seats", "many")])));
    }

    #[test]
    fn negations_match_missing_attributes() {
        let r = rule("region: { ne: eu }\ntier: { not_in: [free] }\n").unwrap();
        assert!(r.matches(&attrs(&[])));
        assert!(!r.matches(&attrs(&[("region", "eu")])));
        assert!(!r.matches(&attrs(&[("tier", "free")])));
    }

    #[test]
    fn regex_and_exists() {
        let r = rule("email: { regex: '@acme\\.com$' }\nbeta: { exists: false }\n").unwrap();
        assert!(r.matches(&attrs(&[("email", "jo@acme.com")])));
        assert!(!r.matches(&attrs(&[("email", "jo@acme.com"), ("beta", "1")])));
        let compiled = CompiledRule::new(&r).unwrap();
        assert!(compiled.matches(&attrs(&[("email", "jo@acme.com")])));
        assert!(!compiled.matches(&attrs(&[("email", "jo@acme.org")])));
    }

    #[test]
    fn yaml_numbers_and_booleans_compare_as_text() {
        let r = rule("seats: 50\nbeta: true\n").unwrap();
        assert!(r.matches(&attrs(&[("seats", "50"), ("beta", "true")])));
        assert!(!r.matches(&attrs(&[("seats", "50.0"), ("beta", "true")])));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let e = rule("seats: { greater: 5 }").unwrap_err();
        assert_eq!(e.message, "unknown operator `greater` in `seats`");
        let e = rule("seats: { gte: 5x }").unwrap_err();
        assert!(e.message.contains("needs a number"), "{e}");
        let e = rule("email: { regex: '(' }").unwrap_err();
        assert!(e.message.contains("not a valid regex"), "{e}");
        assert!(rule("'a.b': x").is_err());
        assert!(rule("{}").is_err());
        assert_eq!(rule("x: { lte: 1 }").unwrap().conditions[0].ops, [Op::Lte(1.0)]);
        let e = rule("x: { \"$gt\": 1 }").unwrap_err();
        assert!(e.hint.unwrap().contains("did you mean `gt`"));
    }

    #[test]
    fn numbers_are_read_as_javascript_reads_them() {
        for (text, expected) in [("42", 42.0), (" 7 ", 7.0), ("", 0.0), ("0x1f", 31.0), ("1e3", 1000.0), (".5", 0.5)] {
            assert_eq!(js_number(text), expected, "{text:?}");
        }
        for text in ["abc", "inf", "NaN", "1_000", "0x", "--1", "1e", "."] {
            assert!(js_number(text).is_nan(), "{text:?}");
        }
        assert_eq!(js_number("-Infinity"), f64::NEG_INFINITY);
    }

    #[test]
    fn growthbook_conditions() {
        let r = rule("plan: enterprise\nseats: { gte: 50 }\ncountry: [DE, '49']\nx: 'null'\n").unwrap();
        assert_eq!(
            r.to_growthbook(),
            serde_json::json!({
                "plan": "enterprise",
                "seats": {"$gte": 50.0, "$exists": true},
                "country": {"$in": ["DE", "49", 49]},
                "x": {"$eq": "null"}
            })
        );
    }
}
