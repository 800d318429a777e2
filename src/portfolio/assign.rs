//! Which variant a unit gets: its segment (first matching rule, else default), then its bucket.
//!
//! Ranges are precomputed per segment, so assigning is one or two FNV hashes and a scan of a few ranges.
//! Units outside coverage get no variant and are served the first variant's version (the feature's
//! default value in the GrowthBook export).

use super::allocate::{BucketRange, bucket_ranges, choose_variation};
use super::hashing::{HashVersion, bucket};
use super::segment::{Attributes, CompiledRule, WithUnit};
use super::spec::Portfolio;

/// A portfolio made ready for assigning many units.
pub struct Assigner<'p> {
    pub portfolio: &'p Portfolio,
    rules: Vec<Option<CompiledRule>>,
    ranges: Vec<Vec<BucketRange>>,
    version: HashVersion,
}

/// Where one unit landed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub segment: usize,
    /// `None` when the unit falls outside coverage.
    pub variant: Option<usize>,
    pub bucket: f64,
}

impl<'p> Assigner<'p> {
    pub fn new(portfolio: &'p Portfolio) -> Result<Self, regex::Error> {
        let rules = portfolio
            .segments
            .iter()
            .map(|s| s.when.as_ref().map(CompiledRule::new).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let ranges = portfolio
            .segments
            .iter()
            .map(|s| bucket_ranges(portfolio.variants.len(), portfolio.coverage, Some(&s.weights)))
            .collect();
        Ok(Assigner { portfolio, rules, ranges, version: portfolio.hash_version() })
    }

    /// The first segment whose rule matches; the default segment (last, no rule) matches everything.
    pub fn segment_of(&self, unit: &str, attributes: &dyn Attributes) -> usize {
        let with_unit = WithUnit { attributes, hash_attribute: &self.portfolio.hash_attribute, unit };
        self.rules
            .iter()
            .position(|rule| rule.as_ref().is_none_or(|r| r.matches(&with_unit)))
            .unwrap_or(self.rules.len() - 1)
    }

    pub fn place(&self, unit: &str, attributes: &dyn Attributes) -> Placement {
        self.place_in(self.segment_of(unit, attributes), unit)
    }

    /// Assigns within a known segment (the hot path of `--units-file`, where every unit has the same
    /// attributes).
    pub fn place_in(&self, segment: usize, unit: &str) -> Placement {
        let hashed = bucket(&self.portfolio.seed, unit, self.version);
        Placement { segment, variant: choose_variation(hashed, &self.ranges[segment]), bucket: hashed }
    }

    /// The version a unit is served: its variant's, or the first variant's outside coverage.
    pub fn served_version(&self, placement: &Placement) -> &str {
        &self.portfolio.variants[placement.variant.unwrap_or(0)].version
    }
}

/// Why a unit id cannot be assigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitIdError {
    #[error("the unit id is empty")]
    Empty,
    #[error("the unit id contains the control character U+{0:04X}")]
    ControlCharacter(u32),
}

/// Unit ids are any non-empty UTF-8 without control characters. Non-ASCII is fine (hashed as UTF-16
/// units, as GrowthBook does); a control character is nearly always a parsing accident (a stray `\r`, a
/// NUL, a tab-separated line) that would silently create a unit nobody else can reproduce.
pub fn check_unit_id(unit: &str) -> Result<(), UnitIdError> {
    if unit.is_empty() {
        return Err(UnitIdError::Empty);
    }
    match unit.chars().find(|c| c.is_control()) {
        Some(c) => Err(UnitIdError::ControlCharacter(c as u32)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::portfolio::spec::ParsedFile;

    fn portfolio() -> Portfolio {
        let text = "name: p\nhash_attribute: user_id\nvariants:\n  - { key: a, version: x, weight: 0.5 }\n  - { key: b, version: y, weight: 0.5 }\nsegments:\n  - name: big\n    when: { seats: { gte: 100 } }\n    weights: { a: 0.0, b: 1.0 }\n";
        let (p, _) =
            ParsedFile::parse(text, "p.yaml", false).unwrap().resolve(|_, r| Ok(format!("{r}00000000000"))).unwrap();
        p
    }

    #[test]
    fn segments_first_match_and_weights() {
        let p = portfolio();
        let assigner = Assigner::new(&p).unwrap();
        let big: BTreeMap<String, String> = [("seats".to_string(), "250".to_string())].into();
        for i in 0..50 {
            let unit = format!("u-{i}");
            let placed = assigner.place(&unit, &big);
            assert_eq!((placed.segment, placed.variant), (0, Some(1)));
            assert_eq!(assigner.served_version(&placed), "y00000000000");
            let default = assigner.place(&unit, &BTreeMap::new());
            assert_eq!(default.segment, 1);
            assert_eq!(default.bucket, bucket("p", &unit, HashVersion::V2));
        }
    }

    #[test]
    fn rules_can_test_the_hash_attribute() {
        let mut p = portfolio();
        p.segments[0].when = Some(crate::portfolio::segment::Rule {
            conditions: vec![crate::portfolio::segment::Condition {
                attribute: "user_id".into(),
                ops: vec![crate::portfolio::segment::Op::Regex("^staff-".into())],
            }],
        });
        let assigner = Assigner::new(&p).unwrap();
        assert_eq!(assigner.segment_of("staff-1", &BTreeMap::new()), 0);
        assert_eq!(assigner.segment_of("cust-1", &BTreeMap::new()), 1);
    }

    #[test]
    fn unit_ids() {
        assert_eq!(check_unit_id("ü-😀"), Ok(()));
        assert_eq!(check_unit_id(""), Err(UnitIdError::Empty));
        assert_eq!(check_unit_id("a\tb"), Err(UnitIdError::ControlCharacter(9)));
        assert_eq!(check_unit_id("a\u{85}"), Err(UnitIdError::ControlCharacter(0x85)));
    }
}
