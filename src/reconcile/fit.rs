//! Small least-squares fits behind the evidence: the token-estimation model and the conversation curve.
//! These describe; they never move money (every dollar in the waterfall is integer arithmetic).

/// `billed ≈ a·traced + b·requests`, fitted over cells (days).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimationFit {
    /// Billed tokens per traced token: a − 1 is the tokenizer skew.
    pub a: f64,
    /// Billed tokens per request that the client's count does not see (tool definitions, wrappers).
    pub b: f64,
    pub r_squared: f64,
    /// Standard errors of `a` and `b` (0 when they cannot be estimated).
    pub se_a: f64,
    pub se_b: f64,
    pub points: usize,
    /// False when there were too few cells to separate the two terms; `b` is then 0.
    pub separated: bool,
}

/// Fits `y ≈ a·x + b·n` without intercept. With fewer than three points, or when `x` and `n` move
/// together exactly, falls back to the ratio `a = Σy / Σx`.
pub fn estimation(points: &[(f64, f64, f64)]) -> Option<EstimationFit> {
    let (sy, sx): (f64, f64) = points.iter().fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
    if points.is_empty() || sx <= 0.0 {
        return None;
    }
    let ratio = EstimationFit {
        a: sy / sx,
        b: 0.0,
        r_squared: 0.0,
        se_a: 0.0,
        se_b: 0.0,
        points: points.len(),
        separated: false,
    };
    if points.len() < 3 {
        return Some(with_r2(ratio, points));
    }
    let (mut sxx, mut sxn, mut snn, mut sxy, mut sny) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(y, x, n) in points {
        sxx += x * x;
        sxn += x * n;
        snn += n * n;
        sxy += x * y;
        sny += n * y;
    }
    let det = sxx * snn - sxn * sxn;
    if det.abs() <= 1e-9 * sxx * snn {
        return Some(with_r2(ratio, points));
    }
    let a = (sxy * snn - sny * sxn) / det;
    let b = (sny * sxx - sxy * sxn) / det;
    let residual: f64 = points.iter().map(|&(y, x, n)| (y - a * x - b * n).powi(2)).sum();
    let variance = residual / (points.len() - 2) as f64;
    let (se_a, se_b) = ((variance * snn / det).max(0.0).sqrt(), (variance * sxx / det).max(0.0).sqrt());
    Some(with_r2(EstimationFit { a, b, r_squared: 0.0, se_a, se_b, points: points.len(), separated: true }, points))
}

fn with_r2(mut fit: EstimationFit, points: &[(f64, f64, f64)]) -> EstimationFit {
    let mean = points.iter().map(|p| p.0).sum::<f64>() / points.len() as f64;
    let total: f64 = points.iter().map(|p| (p.0 - mean).powi(2)).sum();
    let residual: f64 = points.iter().map(|p| (p.0 - fit.a * p.1 - fit.b * p.2).powi(2)).sum();
    fit.r_squared = if total > 0.0 { 1.0 - residual / total } else { 1.0 };
    fit
}

/// `log y = α + β·log x` by least squares; returns (β, α, R²). Points with x or y ≤ 0 are left out.
pub fn power_law(points: impl Iterator<Item = (f64, f64)>) -> Option<(f64, f64, f64)> {
    let logs: Vec<(f64, f64)> = points.filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| (x.ln(), y.ln())).collect();
    if logs.len() < 3 {
        return None;
    }
    let n = logs.len() as f64;
    let mx = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let my = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = logs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let beta = sxy / sxx;
    let alpha = my - beta * mx;
    let total: f64 = logs.iter().map(|p| (p.1 - my).powi(2)).sum();
    let residual: f64 = logs.iter().map(|p| (p.1 - alpha - beta * p.0).powi(2)).sum();
    Some((beta, alpha, if total > 0.0 { 1.0 - residual / total } else { 1.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_skew_and_overhead() {
        let points: Vec<(f64, f64, f64)> = (0..20)
            .map(|i| {
                let n = 100.0 + 13.0 * (i % 7) as f64;
                let x = n * (900.0 + 40.0 * (i % 5) as f64);
                (1.06 * x + 350.0 * n, x, n)
            })
            .collect();
        let fit = estimation(&points).unwrap();
        assert!((fit.a - 1.06).abs() < 1e-6, "{fit:?}");
        assert!((fit.b - 350.0).abs() < 1e-3, "{fit:?}");
        assert!(fit.separated && fit.r_squared > 0.999);
    }

    #[test]
    fn too_few_points_fall_back_to_a_ratio() {
        let fit = estimation(&[(110.0, 100.0, 1.0)]).unwrap();
        assert!((fit.a - 1.1).abs() < 1e-12 && !fit.separated);
        assert!(estimation(&[]).is_none());
    }

    #[test]
    fn a_quadratic_curve_has_exponent_two() {
        let (beta, _, r2) = power_law((1..50).map(|t| (t as f64, 3.0 * (t * t) as f64))).unwrap();
        assert!((beta - 2.0).abs() < 1e-9 && r2 > 0.999_999);
    }
}
