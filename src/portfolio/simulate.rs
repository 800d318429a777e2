//! A simulated bandit to test the rebalancer against: known true reward rates per segment × variant,
//! real hashed assignment, Bernoulli outcomes, one rebalance per simulated week.
//!
//! Regret is counted in expectation (true best rate − true rate of the variant served), so it measures
//! the allocation rather than the luck of the outcome draws. The baseline is the same traffic split
//! uniformly over the variants every week.

use rand::RngExt;
use serde::Serialize;

use super::assign::Assigner;
use super::rebalance::{ArmData, SegmentData, SrmInput, rebalance};
use super::spec::Portfolio;
use crate::stats::sampling::{SeededRng, seeded_rng};

/// The true state of the world for one portfolio segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrueSegment {
    /// Share of the traffic in this segment.
    pub share: f64,
    /// True success rate of each variant (portfolio order).
    pub rates: Vec<f64>,
}

impl TrueSegment {
    pub fn best(&self) -> usize {
        (0..self.rates.len()).max_by(|&a, &b| self.rates[a].total_cmp(&self.rates[b])).unwrap_or(0)
    }

    fn best_rate(&self) -> f64 {
        self.rates[self.best()]
    }

    fn uniform_regret(&self) -> f64 {
        self.best_rate() - self.rates.iter().sum::<f64>() / self.rates.len() as f64
    }
}

/// One simulated unit: who it is, where it landed, and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct SimUnit {
    pub unit: String,
    pub segment: usize,
    pub variant: usize,
    pub reward: f64,
    pub expected_regret: f64,
}

/// A week of traffic under the portfolio's current weights. Units outside coverage are served the
/// first variant, as in production.
pub fn simulate_traffic(
    assigner: &Assigner<'_>,
    world: &[TrueSegment],
    week: usize,
    units: usize,
    rng: &mut SeededRng,
) -> Vec<SimUnit> {
    let total_share: f64 = world.iter().map(|s| s.share).sum();
    (0..units)
        .map(|i| {
            let unit = format!("w{week:02}-u{i:06}");
            let mut pick = rng.random::<f64>() * total_share;
            let segment = world.iter().position(|s| {
                pick -= s.share;
                pick < 0.0
            });
            let segment = segment.unwrap_or(world.len() - 1);
            let variant = assigner.place_in(segment, &unit).variant.unwrap_or(0);
            let truth = &world[segment];
            let reward = if rng.random::<f64>() < truth.rates[variant] { 1.0 } else { 0.0 };
            SimUnit { unit, segment, variant, reward, expected_regret: truth.best_rate() - truth.rates[variant] }
        })
        .collect()
}

/// What the rebalancer sees of one week of traffic.
pub fn week_data(portfolio: &Portfolio, traffic: &[SimUnit]) -> Vec<SegmentData> {
    portfolio
        .segments
        .iter()
        .enumerate()
        .map(|(s, segment)| {
            let mut arms: Vec<ArmData> = portfolio
                .variants
                .iter()
                .zip(&segment.weights)
                .map(|(v, w)| ArmData { variant: v.key.clone(), weight_from: *w, ..ArmData::default() })
                .collect();
            for unit in traffic.iter().filter(|u| u.segment == s) {
                arms[unit.variant].exposures += 1;
                arms[unit.variant].rewards.push(unit.reward);
            }
            let srm = SrmInput {
                observed: arms.iter().map(|a| a.exposures).collect(),
                expected_shares: segment.weights.clone(),
            };
            SegmentData { segment: segment.name.clone(), arms, srm }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekSummary {
    pub week: usize,
    /// Weights in force during the week, per segment.
    pub weights: Vec<Vec<f64>>,
    pub regret: f64,
    pub uniform_regret: f64,
    pub srm_ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentSummary {
    pub segment: String,
    pub best_variant: String,
    pub final_weights: Vec<f64>,
    pub best_has_largest_weight: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    pub weeks: Vec<WeekSummary>,
    pub cumulative_regret: f64,
    pub uniform_cumulative_regret: f64,
    /// cumulative_regret / uniform_cumulative_regret.
    pub regret_ratio: f64,
    pub segments: Vec<SegmentSummary>,
}

/// Runs `weeks` weeks of `units_per_week` units, rebalancing (and applying) after each.
pub fn run(
    mut portfolio: Portfolio,
    world: &[TrueSegment],
    weeks: usize,
    units_per_week: usize,
    seed: u64,
) -> SimReport {
    let mut rng = seeded_rng(seed);
    let mut summaries = Vec::new();
    for week in 0..weeks {
        let assigner = Assigner::new(&portfolio).expect("rules compiled when the portfolio was parsed");
        let traffic = simulate_traffic(&assigner, world, week, units_per_week, &mut rng);
        let regret: f64 = traffic.iter().map(|u| u.expected_regret).sum();
        let uniform_regret: f64 = traffic.iter().map(|u| world[u.segment].uniform_regret()).sum();
        let data = week_data(&portfolio, &traffic);
        let outcome = rebalance(&portfolio.rebalance, &data, seed.wrapping_add(week as u64));
        summaries.push(WeekSummary {
            week: week + 1,
            weights: portfolio.segments.iter().map(|s| s.weights.clone()).collect(),
            regret,
            uniform_regret,
            srm_ok: outcome.srm_ok,
        });
        for segment in &mut portfolio.segments {
            if let Some(weights) = outcome.weights_to(&segment.name) {
                segment.weights = weights;
            }
        }
    }
    let cumulative_regret: f64 = summaries.iter().map(|w| w.regret).sum();
    let uniform_cumulative_regret: f64 = summaries.iter().map(|w| w.uniform_regret).sum();
    let segments = portfolio
        .segments
        .iter()
        .zip(world)
        .map(|(segment, truth)| {
            let best = truth.best();
            let largest = (0..segment.weights.len())
                .max_by(|&a, &b| segment.weights[a].total_cmp(&segment.weights[b]))
                .unwrap_or(0);
            SegmentSummary {
                segment: segment.name.clone(),
                best_variant: portfolio.variants[best].key.clone(),
                final_weights: segment.weights.clone(),
                best_has_largest_weight: largest == best,
            }
        })
        .collect();
    SimReport {
        weeks: summaries,
        cumulative_regret,
        uniform_cumulative_regret,
        regret_ratio: cumulative_regret / uniform_cumulative_regret,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portfolio::spec::ParsedFile;

    /// 4 variants, 3 segments with different best variants; the gaps (2–6 points) are those of real
    /// prompt variants, not of a textbook bandit.
    pub fn world() -> (Portfolio, Vec<TrueSegment>) {
        let text = "\
name: sim
variants:
  - { key: control, version: a }
  - { key: concise, version: b }
  - { key: warm, version: c }
  - { key: stepwise, version: d }
segments:
  - name: enterprise
    when: { plan: enterprise }
    weights: { control: 0.25, concise: 0.25, warm: 0.25, stepwise: 0.25 }
  - name: mobile
    when: { device: mobile }
    weights: { control: 0.25, concise: 0.25, warm: 0.25, stepwise: 0.25 }
  - name: default
    weights: { control: 0.25, concise: 0.25, warm: 0.25, stepwise: 0.25 }
";
        let portfolio = ParsedFile::parse(text, "sim.yaml", false).unwrap().resolve(|_, r| Ok(r.repeat(12))).unwrap().0;
        let world = vec![
            TrueSegment { share: 0.2, rates: vec![0.60, 0.55, 0.58, 0.66] },
            TrueSegment { share: 0.3, rates: vec![0.40, 0.47, 0.42, 0.41] },
            TrueSegment { share: 0.5, rates: vec![0.50, 0.52, 0.56, 0.49] },
        ];
        (portfolio, world)
    }

    /// The figures in docs/portfolios.md come from this test (`cargo test simulate -- --nocapture`).
    #[test]
    fn the_rebalancer_beats_uniform_and_converges_per_segment() {
        let (portfolio, world) = world();
        let report = run(portfolio.clone(), &world, 24, 20_000, 20261127);
        print_report("top_two_beta 0.8 (default)", &report);
        assert!(report.weeks.iter().all(|w| w.srm_ok), "hashed assignment never trips the SRM alarm");
        assert!(report.regret_ratio < 0.5, "regret ratio {}", report.regret_ratio);
        let late: f64 = report.weeks[12..].iter().map(|w| w.regret / w.uniform_regret).sum::<f64>() / 12.0;
        assert!(late < 0.45, "regret ratio over weeks 13-24: {late}");
        for (segment, truth) in report.segments.iter().zip(&world) {
            assert!(segment.best_has_largest_weight, "{segment:?}");
            assert!(segment.final_weights[truth.best()] >= 0.55, "{segment:?}");
        }

        let mut plain = portfolio;
        plain.rebalance.top_two_beta = 1.0;
        let plain = run(plain, &world, 24, 20_000, 20261127);
        print_report("top_two_beta 1.0 (plain Thompson sampling)", &plain);
        assert!(plain.regret_ratio < report.regret_ratio, "without a challenger share the regret is lower still");
        assert!(plain.segments.iter().all(|s| s.best_has_largest_weight));
    }

    fn print_report(title: &str, report: &SimReport) {
        println!(
            "{title}: cumulative regret {:.0} vs uniform {:.0} (ratio {:.3})",
            report.cumulative_regret, report.uniform_cumulative_regret, report.regret_ratio
        );
        for w in report.weeks.iter().filter(|w| [1, 2, 4, 8, 12, 16, 20, 24].contains(&w.week)) {
            println!(
                "  week {:>2}: regret {:>4.0} (uniform {:>4.0}) weights {:?}",
                w.week, w.regret, w.uniform_regret, w.weights
            );
        }
        for s in &report.segments {
            println!("  {}: best {}, final weights {:?}", s.segment, s.best_variant, s.final_weights);
        }
    }
}
