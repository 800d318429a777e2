//! Rebalancing: posterior per segment × variant, top-two Thompson sampling, and the guard rails.
//!
//! Models. When every observed value of the objective is 0 or 1 the reward is Bernoulli with a
//! Beta(1, 1) prior. Otherwise it is Gaussian with a normal-inverse-gamma prior centred on the segment's
//! pooled mean and variance and worth one observation (κ₀ = 1, α₀ = 1, β₀ = pooled variance): arms are
//! shrunk a little towards the segment, never towards an arbitrary zero. With a cost penalty, a draw of
//! the arm's utility is `reward draw − cost_weight × cost draw`, where the mean cost per outcome is drawn
//! from its normal approximation.
//!
//! Allocation. P(best) is the share of joint posterior draws in which an arm has the highest utility.
//! Top-two Thompson sampling (Russo, 2016) plays the leader with probability β and otherwise the
//! challenger: the best arm of a fresh draw in which the leader does not win. Its allocation follows in
//! closed form from P(best): `w_i = β p_i + (1 − β) Σ_{L≠i} p_L · p_i / (1 − p_L)`; when one arm wins
//! every draw the challenger is the arm most often second to it.
//!
//! Guard rails, in order: a variant with weight 0 is retired and stays at 0 (only `portfolio set` brings
//! a variant back, so a rolled-back version is never revived); a variant with fewer than `min_samples`
//! outcomes keeps its weight; the others share the rest by the allocation above, each raised to
//! `min_weight`; then the whole move is scaled down so that no weight changes by more than `max_shift`.
//! A sample-ratio-mismatch test runs first, and a failure refuses the rebalance altogether.

use rand::distr::Distribution;
use serde::Serialize;

use super::spec::RebalanceConfig;
use super::srm::{SRM_ALARM_P_VALUE, sample_ratio_mismatch};
use crate::stats::distributions::beta_quantile;
use crate::stats::sampling::{BetaSampler, GammaSampler, NormalSampler, SeededRng, seeded_rng};

/// The evidence about one variant in one segment over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmData {
    pub variant: String,
    pub weight_from: f64,
    /// Units first exposed in the window (quarantined ones excluded).
    pub exposures: u64,
    /// Values of the objective, one per outcome (quarantined ones excluded).
    pub rewards: Vec<f64>,
    /// `cost_usd` of the outcomes that reported one.
    pub costs: Vec<f64>,
}

/// Exposures for the sample-ratio test: counts per variant and the share each was expected to get
/// (the weights in force, averaged over the portfolio versions the window spans).
#[derive(Debug, Clone, PartialEq)]
pub struct SrmInput {
    pub observed: Vec<u64>,
    pub expected_shares: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentData {
    pub segment: String,
    pub arms: Vec<ArmData>,
    pub srm: SrmInput,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SrmResult {
    pub p_value: Option<f64>,
    pub statistic: Option<f64>,
    pub ok: bool,
    pub exposures: u64,
    pub observed: Vec<u64>,
    pub expected: Vec<f64>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmReport {
    pub variant: String,
    pub n: u64,
    pub exposures: u64,
    pub reward_mean: Option<f64>,
    pub cost_usd_mean: Option<f64>,
    pub utility_mean: Option<f64>,
    /// 95% credible interval of the mean utility (the mean reward when there is no cost penalty).
    pub interval: Option<[f64; 2]>,
    pub p_best: Option<f64>,
    pub weight_from: f64,
    pub weight_to: f64,
    pub held: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentReport {
    pub segment: String,
    pub model: &'static str,
    pub srm: SrmResult,
    pub variants: Vec<ArmReport>,
    pub held: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RebalanceOutcome {
    pub srm_ok: bool,
    pub srm_min_p_value: Option<f64>,
    pub reward_model: &'static str,
    pub segments: Vec<SegmentReport>,
}

impl RebalanceOutcome {
    /// Whether any weight moved.
    pub fn changed(&self) -> bool {
        self.segments.iter().any(|s| s.variants.iter().any(|v| v.weight_to != v.weight_from))
    }

    pub fn weights_to(&self, segment: &str) -> Option<Vec<f64>> {
        let s = self.segments.iter().find(|s| s.segment == segment)?;
        Some(s.variants.iter().map(|v| v.weight_to).collect())
    }
}

const BETA_BERNOULLI: &str = "beta-bernoulli";
const NORMAL_INVERSE_GAMMA: &str = "normal-inverse-gamma";

/// Runs the sample-ratio test and, when it passes, the allocation for every segment.
pub fn rebalance(config: &RebalanceConfig, segments: &[SegmentData], seed: u64) -> RebalanceOutcome {
    let binary = segments.iter().flat_map(|s| &s.arms).flat_map(|a| &a.rewards).all(|&r| r == 0.0 || r == 1.0);
    let model = if binary { BETA_BERNOULLI } else { NORMAL_INVERSE_GAMMA };
    let srm: Vec<SrmResult> = segments.iter().map(|s| srm_check(&s.srm)).collect();
    let srm_ok = srm.iter().all(|r| r.ok);
    let srm_min_p_value = srm.iter().filter_map(|r| r.p_value).reduce(f64::min);
    let mut rng = seeded_rng(seed);
    let reports = segments
        .iter()
        .zip(srm)
        .map(|(segment, srm)| segment_report(config, segment, srm, binary, srm_ok, &mut rng))
        .collect();
    RebalanceOutcome { srm_ok, srm_min_p_value, reward_model: model, segments: reports }
}

fn srm_check(input: &SrmInput) -> SrmResult {
    let total: u64 = input.observed.iter().sum();
    let expected: Vec<f64> = input.expected_shares.iter().map(|s| s * total as f64).collect();
    let result = |p_value: Option<f64>, statistic: Option<f64>, note: Option<&str>| SrmResult {
        ok: p_value.is_none_or(|p| p >= SRM_ALARM_P_VALUE),
        p_value,
        statistic,
        exposures: total,
        observed: input.observed.clone(),
        expected: expected.iter().map(|e| (e * 10.0).round() / 10.0).collect(),
        note: note.map(str::to_string),
    };
    match sample_ratio_mismatch(&input.observed, &input.expected_shares) {
        Ok(test) => result(Some(test.p_value), Some(test.statistic), None),
        Err(crate::stats::StatsError::NoObservations) => result(None, None, Some("no exposures in the window")),
        Err(_) => result(None, None, Some("one active variant: nothing to compare")),
    }
}

/// Sufficient statistics and a posterior sampler for one arm's mean utility.
struct Posterior {
    reward: RewardPosterior,
    cost: Option<NormalSampler>,
    cost_mean: f64,
    cost_weight: f64,
}

enum RewardPosterior {
    Beta(BetaSampler, f64, f64),
    Nig { mean: f64, kappa: f64, alpha: f64, beta: f64 },
}

impl Posterior {
    fn draw(&self, rng: &mut SeededRng) -> f64 {
        let reward = match &self.reward {
            RewardPosterior::Beta(sampler, _, _) => sampler.sample(rng),
            RewardPosterior::Nig { mean, kappa, alpha, beta } => {
                // σ² ~ InvGamma(α, β), μ | σ² ~ N(mean, σ²/κ).
                let precision = GammaSampler::new(*alpha, 1.0 / beta).map_or(1.0 / beta, |g| g.sample(rng));
                let sd = (1.0 / (precision * kappa)).sqrt();
                NormalSampler::new(*mean, sd).map_or(*mean, |n| n.sample(rng))
            }
        };
        let cost = match &self.cost {
            Some(sampler) => sampler.sample(rng),
            None => self.cost_mean,
        };
        reward - self.cost_weight * cost
    }

    /// The 95% credible interval of the mean utility.
    fn interval(&self) -> Option<[f64; 2]> {
        let shift = self.cost_weight * self.cost_mean;
        match &self.reward {
            RewardPosterior::Beta(_, a, b) => {
                let lo = beta_quantile(*a, *b, 0.025).ok()?;
                let hi = beta_quantile(*a, *b, 0.975).ok()?;
                Some([lo - shift, hi - shift])
            }
            RewardPosterior::Nig { mean, kappa, alpha, beta } => {
                // The marginal of μ is Student t with 2α degrees of freedom, scale √(β / (α κ)).
                use statrs::distribution::{ContinuousCDF, StudentsT};
                let scale = (beta / (alpha * kappa)).sqrt();
                let t = StudentsT::new(0.0, 1.0, 2.0 * alpha).ok()?.inverse_cdf(0.975);
                Some([mean - t * scale - shift, mean + t * scale - shift])
            }
        }
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn variance(values: &[f64]) -> Option<f64> {
    let m = mean(values)?;
    (values.len() >= 2).then(|| values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() - 1) as f64)
}

fn posterior(arm: &ArmData, binary: bool, pooled: (f64, f64), cost_weight: f64) -> Posterior {
    let reward = if binary {
        let successes = arm.rewards.iter().filter(|&&r| r == 1.0).count() as f64;
        let (a, b) = (1.0 + successes, 1.0 + arm.rewards.len() as f64 - successes);
        RewardPosterior::Beta(BetaSampler::new(a, b).expect("a, b ≥ 1"), a, b)
    } else {
        let (mu0, var0) = pooled;
        let n = arm.rewards.len() as f64;
        let xbar = mean(&arm.rewards).unwrap_or(mu0);
        let ss: f64 = arm.rewards.iter().map(|x| (x - xbar) * (x - xbar)).sum();
        let kappa = 1.0 + n;
        RewardPosterior::Nig {
            mean: (mu0 + n * xbar) / kappa,
            kappa,
            alpha: 1.0 + n / 2.0,
            beta: var0 + ss / 2.0 + n * (xbar - mu0) * (xbar - mu0) / (2.0 * kappa),
        }
    };
    let cost_mean = mean(&arm.costs).unwrap_or(0.0);
    let cost = if cost_weight > 0.0 {
        variance(&arm.costs)
            .filter(|v| *v > 0.0)
            .and_then(|v| NormalSampler::new(cost_mean, (v / arm.costs.len() as f64).sqrt()).ok())
    } else {
        None
    };
    Posterior { reward, cost, cost_mean, cost_weight }
}

/// The segment's pooled mean and variance, the centre and scale of the Gaussian prior.
fn pooled(arms: &[ArmData]) -> (f64, f64) {
    let all: Vec<f64> = arms.iter().flat_map(|a| a.rewards.iter().copied()).collect();
    let var = variance(&all).filter(|v| *v > 0.0).unwrap_or(1.0);
    (mean(&all).unwrap_or(0.0), var)
}

/// Why an arm does not take part in the allocation, if it does not.
fn hold_reason(arm: &ArmData, config: &RebalanceConfig) -> Option<String> {
    if arm.weight_from <= 0.0 {
        return Some("retired: weight 0 (only `portfolio set` brings a variant back)".into());
    }
    let n = arm.rewards.len() as u64;
    (n < config.min_samples).then(|| format!("n = {n} < min_samples {}", config.min_samples))
}

fn segment_report(
    config: &RebalanceConfig,
    segment: &SegmentData,
    srm: SrmResult,
    binary: bool,
    srm_ok: bool,
    rng: &mut SeededRng,
) -> SegmentReport {
    let pooled = pooled(&segment.arms);
    let posteriors: Vec<Posterior> =
        segment.arms.iter().map(|a| posterior(a, binary, pooled, config.cost_weight)).collect();
    let reasons: Vec<Option<String>> = segment.arms.iter().map(|a| hold_reason(a, config)).collect();
    let active: Vec<usize> = (0..segment.arms.len()).filter(|&i| segment.arms[i].weight_from > 0.0).collect();
    let movable: Vec<usize> = (0..segment.arms.len()).filter(|&i| reasons[i].is_none()).collect();
    let draws = Draws::run(&posteriors, &active, &movable, config.draws, rng);
    let weights_from: Vec<f64> = segment.arms.iter().map(|a| a.weight_from).collect();
    let (weights_to, segment_reason, capped) = if !srm_ok {
        (weights_from.clone(), Some(refusal_reason()), false)
    } else if movable.len() < 2 {
        (weights_from.clone(), Some(too_little_data(config, &movable)), false)
    } else {
        let target = allocation(&weights_from, &movable, &draws, config);
        let (to, capped) = limit_shift(&weights_from, &target, config.max_shift);
        (round_movable(&to, &weights_from, &movable), None, capped)
    };
    let variants = segment
        .arms
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            let n = arm.rewards.len() as u64;
            let reward_mean = mean(&arm.rewards);
            let cost_mean = mean(&arm.costs);
            let mut reason = reasons[i].clone();
            if reason.is_none() && capped && weights_to[i] != weights_from[i] {
                reason = Some(format!("move limited by max_shift {}", config.max_shift));
            }
            if reason.is_none() && movable.len() >= 2 && (weights_to[i] - config.min_weight).abs() < 1e-9 {
                reason = Some(format!("at min_weight {}", config.min_weight));
            }
            ArmReport {
                variant: arm.variant.clone(),
                n,
                exposures: arm.exposures,
                reward_mean,
                cost_usd_mean: cost_mean,
                utility_mean: reward_mean.map(|r| r - config.cost_weight * cost_mean.unwrap_or(0.0)),
                interval: if n > 0 { posteriors[i].interval() } else { None },
                p_best: draws.p_best_active(i),
                weight_from: arm.weight_from,
                weight_to: weights_to[i],
                held: reasons[i].is_some() || segment_reason.is_some(),
                reason,
            }
        })
        .collect();
    let model = if binary { BETA_BERNOULLI } else { NORMAL_INVERSE_GAMMA };
    SegmentReport {
        segment: segment.segment.clone(),
        model,
        srm,
        variants,
        held: segment_reason.is_some(),
        reason: segment_reason,
    }
}

fn refusal_reason() -> String {
    "sample-ratio mismatch: exposures do not match the weights in force, so the assignment or logging \
     pipeline is broken; no weight moves until it is fixed"
        .into()
}

fn too_little_data(config: &RebalanceConfig, movable: &[usize]) -> String {
    match movable.len() {
        0 => format!("too little data: no variant has min_samples ({}) outcomes in the window", config.min_samples),
        _ => format!(
            "too little data: only one variant has min_samples ({}) outcomes in the window; two are needed to compare",
            config.min_samples
        ),
    }
}

/// Counts from joint posterior draws: who led among the active arms, and who led and came second among
/// the movable arms.
struct Draws {
    draws: u32,
    lead_active: Vec<u32>,
    lead_movable: Vec<u32>,
    /// `second[l][j]`: draws in which movable arm l led and j came second.
    second: Vec<Vec<u32>>,
}

impl Draws {
    fn run(posteriors: &[Posterior], active: &[usize], movable: &[usize], draws: u32, rng: &mut SeededRng) -> Self {
        let k = posteriors.len();
        let mut counts =
            Draws { draws, lead_active: vec![0; k], lead_movable: vec![0; k], second: vec![vec![0; k]; k] };
        if active.is_empty() {
            return counts;
        }
        let mut values = vec![f64::NEG_INFINITY; k];
        for _ in 0..draws {
            for &i in active {
                values[i] = posteriors[i].draw(rng);
            }
            let best = |set: &[usize], except: Option<usize>| {
                set.iter().copied().filter(|&i| Some(i) != except).max_by(|&a, &b| values[a].total_cmp(&values[b]))
            };
            if let Some(leader) = best(active, None) {
                counts.lead_active[leader] += 1;
            }
            if let Some(leader) = best(movable, None) {
                counts.lead_movable[leader] += 1;
                if let Some(runner_up) = best(movable, Some(leader)) {
                    counts.second[leader][runner_up] += 1;
                }
            }
        }
        counts
    }

    fn p_best_active(&self, arm: usize) -> Option<f64> {
        let total: u32 = self.lead_active.iter().sum();
        (total > 0).then(|| f64::from(self.lead_active[arm]) / f64::from(self.draws))
    }
}

/// Top-two Thompson allocation of the movable arms' combined weight, each raised to the floor.
fn allocation(weights_from: &[f64], movable: &[usize], draws: &Draws, config: &RebalanceConfig) -> Vec<f64> {
    let beta = config.top_two_beta;
    let p: Vec<f64> =
        (0..weights_from.len()).map(|i| f64::from(draws.lead_movable[i]) / f64::from(draws.draws)).collect();
    let mut share = vec![0.0; weights_from.len()];
    for &leader in movable {
        if p[leader] == 0.0 {
            continue;
        }
        share[leader] += beta * p[leader];
        let rest = 1.0 - p[leader];
        let seconds: u32 = draws.second[leader].iter().sum();
        for &j in movable.iter().filter(|&&j| j != leader) {
            let challenger = if rest > 1e-12 {
                p[j] / rest
            } else if seconds > 0 {
                f64::from(draws.second[leader][j]) / f64::from(seconds)
            } else {
                1.0 / (movable.len() - 1) as f64
            };
            share[j] += (1.0 - beta) * p[leader] * challenger;
        }
    }
    let mass: f64 = movable.iter().map(|&i| weights_from[i]).sum();
    let mut target = weights_from.to_vec();
    let floored =
        apply_floor(&movable.iter().map(|&i| share[i]).collect::<Vec<_>>(), config.min_weight / mass.max(1e-12));
    for (&i, s) in movable.iter().zip(floored) {
        target[i] = s * mass;
    }
    target
}

/// Raises every share below `floor` to it and takes the difference proportionally from the others
/// (repeating while that pushes another below the floor). Shares sum to 1 before and after.
fn apply_floor(shares: &[f64], floor: f64) -> Vec<f64> {
    let total: f64 = shares.iter().sum();
    let mut shares: Vec<f64> = if total > 0.0 {
        shares.iter().map(|s| s / total).collect()
    } else {
        vec![1.0 / shares.len() as f64; shares.len()]
    };
    if floor * shares.len() as f64 >= 1.0 {
        return vec![1.0 / shares.len() as f64; shares.len()];
    }
    let mut pinned = vec![false; shares.len()];
    loop {
        let newly: Vec<usize> = (0..shares.len()).filter(|&i| !pinned[i] && shares[i] < floor).collect();
        if newly.is_empty() {
            return shares;
        }
        for &i in &newly {
            pinned[i] = true;
            shares[i] = floor;
        }
        let pinned_mass: f64 = (0..shares.len()).filter(|&i| pinned[i]).map(|i| shares[i]).sum();
        let free_mass: f64 = (0..shares.len()).filter(|&i| !pinned[i]).map(|i| shares[i]).sum();
        let scale = if free_mass > 0.0 { (1.0 - pinned_mass) / free_mass } else { 0.0 };
        for i in (0..shares.len()).filter(|&i| !pinned[i]) {
            shares[i] *= scale;
        }
    }
}

/// Moves from `from` towards `target` by the largest fraction that keeps every change within
/// `max_shift`; a convex combination keeps the sum and the floor of both ends. Returns whether the move
/// was cut short.
fn limit_shift(from: &[f64], target: &[f64], max_shift: f64) -> (Vec<f64>, bool) {
    let largest = from.iter().zip(target).map(|(f, t)| (t - f).abs()).fold(0.0, f64::max);
    let fraction = if largest > max_shift { max_shift / largest } else { 1.0 };
    (from.iter().zip(target).map(|(f, t)| f + fraction * (t - f)).collect(), fraction < 1.0)
}

/// Rounds the movable weights to 4 decimals (largest remainder, so their total is kept) when their
/// total is itself a multiple of 0.0001; otherwise leaves them unrounded rather than break the sum.
fn round_movable(weights: &[f64], weights_from: &[f64], movable: &[usize]) -> Vec<f64> {
    const UNITS: f64 = 10_000.0;
    let mass: f64 = movable.iter().map(|&i| weights_from[i]).sum();
    let mass_units = (mass * UNITS).round();
    if (mass_units / UNITS - mass).abs() > 1e-12 {
        return weights.to_vec();
    }
    let scaled: Vec<f64> = movable.iter().map(|&i| weights[i] * UNITS).collect();
    let mut units: Vec<f64> = scaled.iter().map(|s| s.floor()).collect();
    let mut missing = (mass_units - units.iter().sum::<f64>()).round() as i64;
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| (scaled[b] - units[b]).total_cmp(&(scaled[a] - units[a])));
    for &k in order.iter().cycle().take(order.len() * 2) {
        if missing <= 0 {
            break;
        }
        units[k] += 1.0;
        missing -= 1;
    }
    let mut out = weights.to_vec();
    for (&i, u) in movable.iter().zip(units) {
        out[i] = u / UNITS;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(variant: &str, weight: f64, successes: usize, n: usize) -> ArmData {
        let rewards = (0..n).map(|i| if i < successes { 1.0 } else { 0.0 }).collect();
        ArmData { variant: variant.into(), weight_from: weight, exposures: n as u64, rewards, costs: vec![] }
    }

    fn segment(arms: Vec<ArmData>) -> SegmentData {
        let srm = SrmInput {
            observed: arms.iter().map(|a| a.exposures).collect(),
            expected_shares: arms.iter().map(|a| a.weight_from).collect(),
        };
        SegmentData { segment: "default".into(), arms, srm }
    }

    fn config() -> RebalanceConfig {
        RebalanceConfig { min_samples: 100, ..RebalanceConfig::default() }
    }

    #[test]
    fn moves_towards_the_better_arm_within_max_shift() {
        let data = segment(vec![arm("a", 0.5, 600, 1000), arm("b", 0.5, 500, 1000)]);
        let out = rebalance(&config(), &[data], 7);
        let s = &out.segments[0];
        assert!(out.srm_ok && !s.held, "{s:?}");
        assert_eq!(s.model, "beta-bernoulli");
        let (a, b) = (&s.variants[0], &s.variants[1]);
        assert!(a.p_best.unwrap() > 0.99);
        assert!(a.weight_to > 0.5 && a.weight_to <= 0.7 + 1e-12, "{a:?}");
        assert!((a.weight_to + b.weight_to - 1.0).abs() < 1e-12);
        let [lo, hi] = a.interval.unwrap();
        assert!(lo < 0.6 && 0.6 < hi);
    }

    #[test]
    fn same_seed_same_weights() {
        let data = segment(vec![arm("a", 0.4, 210, 400), arm("b", 0.3, 200, 400), arm("c", 0.3, 190, 400)]);
        let one = rebalance(&config(), std::slice::from_ref(&data), 11);
        let two = rebalance(&config(), std::slice::from_ref(&data), 11);
        assert_eq!(one, two);
    }

    #[test]
    fn too_little_data_holds_with_the_reason() {
        let data = segment(vec![arm("a", 0.5, 30, 50), arm("b", 0.5, 20, 50)]);
        let out = rebalance(&config(), &[data], 1);
        let s = &out.segments[0];
        assert!(s.held);
        assert!(s.reason.as_deref().unwrap().contains("too little data"), "{s:?}");
        assert_eq!(s.variants[0].reason.as_deref(), Some("n = 50 < min_samples 100"));
        assert_eq!(s.variants[0].weight_to, 0.5);
    }

    #[test]
    fn an_arm_below_min_samples_keeps_its_weight_and_retired_arms_stay_retired() {
        let mut c = arm("c", 0.2, 10, 20);
        c.exposures = 250;
        let data = segment(vec![arm("a", 0.4, 300, 500), arm("b", 0.4, 200, 500), c, arm("gone", 0.0, 0, 0)]);
        let out = rebalance(&config(), &[data], 3);
        let v = &out.segments[0].variants;
        assert_eq!(v[2].weight_to, 0.2);
        assert_eq!(v[3].weight_to, 0.0);
        assert!(v[3].reason.as_deref().unwrap().starts_with("retired"));
        assert!((v.iter().map(|a| a.weight_to).sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(v[0].weight_to > v[1].weight_to, "{v:#?}");
    }

    #[test]
    fn the_floor_holds_for_a_clear_loser() {
        let cfg = RebalanceConfig { max_shift: 1.0, min_weight: 0.1, top_two_beta: 0.5, ..config() };
        let data = segment(vec![arm("a", 0.5, 900, 1000), arm("b", 0.5, 100, 1000)]);
        let out = rebalance(&cfg, &[data], 5);
        let v = &out.segments[0].variants;
        // β = 0.5: the leader keeps half and, with no other challenger, b gets the other half.
        assert!((v[0].weight_to - 0.5).abs() < 0.01, "{v:?}");
        let cfg = RebalanceConfig { top_two_beta: 0.8, ..cfg };
        let data = segment(vec![arm("a", 0.5, 900, 1000), arm("b", 0.5, 100, 1000)]);
        let v = rebalance(&cfg, &[data], 5).segments[0].variants.clone();
        assert!((v[0].weight_to - 0.8).abs() < 0.01, "{v:?}");
        let cfg = RebalanceConfig { top_two_beta: 1.0, ..cfg };
        let data = segment(vec![arm("a", 0.5, 900, 1000), arm("b", 0.5, 100, 1000)]);
        let v = rebalance(&cfg, &[data], 5).segments[0].variants.clone();
        assert_eq!(v[1].weight_to, 0.1);
        assert_eq!(v[1].reason.as_deref(), Some("at min_weight 0.1"));
    }

    #[test]
    fn sample_ratio_mismatch_refuses() {
        let mut data = segment(vec![arm("a", 0.5, 600, 1000), arm("b", 0.5, 500, 1000)]);
        data.srm.observed = vec![1200, 800];
        let out = rebalance(&config(), &[data], 7);
        assert!(!out.srm_ok);
        let s = &out.segments[0];
        assert!(s.held && s.reason.as_deref().unwrap().contains("pipeline is broken"));
        assert!(!out.changed());
    }

    #[test]
    fn continuous_rewards_use_the_gaussian_model() {
        let mut a = arm("a", 0.5, 0, 200);
        a.rewards = (0..200).map(|i| 3.0 + f64::from(i % 5) * 0.1).collect();
        let mut b = arm("b", 0.5, 0, 200);
        b.rewards = (0..200).map(|i| 2.5 + f64::from(i % 5) * 0.1).collect();
        let out = rebalance(&config(), &[segment(vec![a, b])], 9);
        let s = &out.segments[0];
        assert_eq!(s.model, "normal-inverse-gamma");
        assert!(s.variants[0].p_best.unwrap() > 0.99);
        let [lo, hi] = s.variants[0].interval.unwrap();
        assert!(lo < 3.2 && 3.2 < hi && hi - lo < 0.1, "{lo} {hi}");
    }

    #[test]
    fn a_cost_penalty_can_reverse_the_order() {
        let mut a = arm("a", 0.5, 550, 1000);
        a.costs = vec![0.02; 1000];
        let mut b = arm("b", 0.5, 500, 1000);
        b.costs = vec![0.001; 1000];
        let cfg = RebalanceConfig { cost_weight: 5.0, ..config() };
        let out = rebalance(&cfg, &[segment(vec![a, b])], 2);
        let v = &out.segments[0].variants;
        assert!(v[1].p_best.unwrap() > 0.9, "{v:?}");
        assert!((v[0].utility_mean.unwrap() - (0.55 - 0.1)).abs() < 1e-9);
    }

    #[test]
    fn floors_and_shift_limits() {
        let floored = apply_floor(&[0.9, 0.08, 0.02], 0.05);
        assert!((floored.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(floored[2], 0.05);
        assert!(floored[1] >= 0.05);
        let (moved, capped) = limit_shift(&[0.5, 0.5], &[0.9, 0.1], 0.2);
        assert!(capped);
        assert!((moved[0] - 0.7).abs() < 1e-12 && (moved[1] - 0.3).abs() < 1e-12);
        let rounded = round_movable(&[0.123456, 0.876544], &[0.5, 0.5], &[0, 1]);
        assert_eq!(rounded, [0.1235, 0.8765]);
    }
}
