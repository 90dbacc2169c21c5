//! GGUF `rope_freqs.weight` back to transformers' `rope_scaling` (`rope_type: llama3`).
//!
//! llama.cpp's converter does not store Llama 3.x's rope-scaling parameters; it stores their effect,
//! one factor per rotary frequency (`rope_freqs`, `head_dim / 2` f32 values), and llama.cpp divides
//! each frequency by its factor. transformers' llama3 scaling gives frequency `f` the factor
//! 1 (wavelength `2π/f` below `old / high_freq_factor`), `factor` (above `old / low_freq_factor`), or
//! `1 / ((1 - s) / factor + s)` in between with `s = (old / wavelength - low) / (high - low)`.
//!
//! The factors fix `factor` (the largest) and the two wavelength boundaries, so the parameters are
//! recovered with `low_freq_factor = 1` (Llama 3.x's value; only the ratios `old / low`,
//! `old / high` matter): from two interpolated frequencies exactly, else from the midpoint of the
//! interval the factors allow. The recovered parameters are checked to reproduce every factor of the
//! file (relative 1e-4) before they are used; factors of another shape are an error naming the tensor.
use super::{GgufFile, ROPE_FREQS};
use crate::error::{Error, Result};
use serde_json::json;

/// Relative tolerance for a recomputed factor (the file holds f32; the fit is in f64).
const TOL: f64 = 1e-4;

/// transformers' llama3 factor of inverse frequency `f` (the divisor llama.cpp stores).
fn llama3_factor(f: f64, factor: f64, low: f64, high: f64, old: f64) -> f64 {
    let wavelen = 2.0 * std::f64::consts::PI / f;
    if wavelen < old / high {
        1.0
    } else if wavelen > old / low {
        factor
    } else {
        let s = (old / wavelen - low) / (high - low);
        1.0 / ((1.0 - s) / factor + s)
    }
}

/// The `rope_scaling` object that reproduces the file's `rope_freqs`, or `None` when every factor
/// is 1 (no scaling).
pub fn llama3_from_rope_freqs(g: &GgufFile, theta: f64, head_dim: usize) -> Result<Option<serde_json::Value>> {
    let (info, bytes) = g.tensor_bytes(ROPE_FREQS)?;
    let factors: Vec<f64> = super::dequant::dequantize(info.ggml_type, bytes).into_iter().map(f64::from).collect();
    let bad = |m: String| Error::Weights { path: g.path.clone(), message: format!("tensor `{ROPE_FREQS}`: {m}") };
    if factors.len() != head_dim / 2 {
        return Err(bad(format!("{} values, expected head_dim / 2 = {}", factors.len(), head_dim / 2)));
    }
    if factors.iter().any(|f| !f.is_finite() || *f < 1.0 - TOL) {
        return Err(bad("factors must be finite and at least 1".into()));
    }
    // Inverse frequencies as the converter computes them (f32 arange and power).
    let inv: Vec<f64> =
        (0..head_dim / 2).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32) as f64).collect();
    let Some(Llama3 { factor, low, high, old }) = fit(&factors, &inv).map_err(bad)? else {
        return Ok(None);
    };
    tracing::debug!(
        "{}: rope_freqs -> llama3 factor {factor} high_freq_factor {high} original {old}",
        g.path.display()
    );
    Ok(Some(json!({
        "rope_type": "llama3",
        "factor": factor,
        "low_freq_factor": low,
        "high_freq_factor": high,
        "original_max_position_embeddings": old,
    })))
}

/// Llama 3 rope-scaling parameters (transformers' names: `factor`, `low_freq_factor`,
/// `high_freq_factor`, `original_max_position_embeddings`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3 {
    pub factor: f64,
    pub low: f64,
    pub high: f64,
    pub old: f64,
}

/// The parameters that give `factors` for inverse frequencies `inv` (see the module docs), `None`
/// when every factor is 1, an error when no Llama 3 parameters reproduce them.
pub fn fit(factors: &[f64], inv: &[f64]) -> std::result::Result<Option<Llama3>, String> {
    let wavelen: Vec<f64> = inv.iter().map(|f| 2.0 * std::f64::consts::PI / f).collect();
    let factor = factors.iter().cloned().fold(1.0, f64::max);
    if factor <= 1.0 + TOL {
        return Ok(None);
    }
    let is_one = |f: f64| (f - 1.0).abs() <= TOL;
    let is_max = |f: f64| (f - factor).abs() <= TOL * factor;
    // Interpolation weight of each in-between factor, against 1 / wavelength.
    let smooth: Vec<(f64, f64)> = factors
        .iter()
        .zip(&wavelen)
        .filter(|(f, _)| !is_one(**f) && !is_max(**f))
        .map(|(f, w)| (1.0 / w, (1.0 / f - 1.0 / factor) / (1.0 - 1.0 / factor)))
        .collect();
    // Bracket of each boundary from the classified frequencies (wavelengths grow with the index).
    let longest_one = factors.iter().zip(&wavelen).filter(|(f, _)| is_one(**f)).map(|(_, w)| *w).fold(0.0, f64::max);
    let shortest_not_one =
        factors.iter().zip(&wavelen).filter(|(f, _)| !is_one(**f)).map(|(_, w)| *w).fold(f64::INFINITY, f64::min);
    let longest_not_max =
        factors.iter().zip(&wavelen).filter(|(f, _)| !is_max(**f)).map(|(_, w)| *w).fold(0.0, f64::max);
    let shortest_max =
        factors.iter().zip(&wavelen).filter(|(f, _)| is_max(**f)).map(|(_, w)| *w).fold(f64::INFINITY, f64::min);
    let mid = |lo: f64, hi: f64| match (lo > 0.0, hi.is_finite()) {
        (true, true) => (lo * hi).sqrt(),
        (true, false) => 2.0 * lo,
        (false, true) => hi / 2.0,
        (false, false) => 1.0,
    };
    // Boundaries as wavelengths: `high_w` (factor 1 below), `low_w` (factor `factor` above).
    let (high_w, low_w) = match smooth.as_slice() {
        [] => (mid(longest_one, shortest_not_one), mid(longest_not_max, shortest_max)),
        [(x, s)] => {
            // One point: take the short boundary from its bracket; the line through it gives the other.
            let high_w = mid(longest_one, shortest_not_one);
            // s = (x - x_low) / (x_high - x_low) with x = 1 / wavelength.
            let x_high = 1.0 / high_w;
            let x_low = (x - s * x_high) / (1.0 - s);
            (high_w, 1.0 / x_low)
        }
        [(x0, s0), .., (x1, s1)] => {
            let slope = (s1 - s0) / (x1 - x0);
            let x_low = x0 - s0 / slope;
            let x_high = x_low + 1.0 / slope;
            (1.0 / x_high, 1.0 / x_low)
        }
    };
    // `original_max_position_embeddings` is an integer in config.json: round it and keep the two
    // ratios (`low` moves off 1 only when the file's boundary is not at an integer).
    let old = low_w.round().max(1.0);
    let low = if (old / low_w - 1.0).abs() <= 1e-6 { 1.0 } else { old / low_w };
    let high = old / high_w;
    if !(high.is_finite() && old.is_finite() && high > low && old > 0.0) {
        return Err("the factors do not follow Llama 3 rope scaling".into());
    }
    let worst = inv
        .iter()
        .zip(factors)
        .map(|(&f, &want)| (llama3_factor(f, factor, low, high, old) - want).abs() / want)
        .fold(0.0, f64::max);
    if worst > TOL {
        return Err(format!(
            "the factors do not follow Llama 3 rope scaling (best fit factor {factor}, high_freq_factor {high:.4}, original_max_position_embeddings {old:.2}: off by {worst:.1e})"
        ));
    }
    Ok(Some(Llama3 { factor, low, high, old }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factors(p: Llama3, inv: &[f64]) -> Vec<f64> {
        inv.iter().map(|&x| llama3_factor(x, p.factor, p.low, p.high, p.old)).collect()
    }

    fn inv(theta: f32, d: usize) -> Vec<f64> {
        (0..d / 2).map(|i| 1.0 / theta.powf((2 * i) as f32 / d as f32) as f64).collect()
    }

    /// Llama 3.1's parameters come back from its factors (head_dim 128, theta 500000); the
    /// tiny fixture's (head_dim 32, original 16) too; factors of 1 are no scaling; factors that
    /// are not of this form are refused.
    #[test]
    fn llama3_parameters_are_recovered_from_the_factors() {
        let l31 = Llama3 { factor: 8.0, low: 1.0, high: 4.0, old: 8192.0 };
        let inv31 = inv(500000.0, 128);
        let got = fit(&factors(l31, &inv31), &inv31).unwrap().unwrap();
        for (a, b) in [(got.factor, 8.0), (got.low, 1.0), (got.high, 4.0), (got.old, 8192.0)] {
            assert!((a - b).abs() <= 1e-6 * b, "{got:?}");
        }
        let tiny = Llama3 { factor: 8.0, low: 1.0, high: 4.0, old: 16.0 };
        let inv_t = inv(10000.0, 32);
        let got = fit(&factors(tiny, &inv_t), &inv_t).unwrap().unwrap();
        let again = factors(got, &inv_t);
        assert!(again.iter().zip(factors(tiny, &inv_t)).all(|(a, b)| (a - b).abs() <= 1e-9 * b), "{got:?}");
        assert_eq!(fit(&vec![1.0; 64], &inv31).unwrap(), None);
        let mut odd = factors(l31, &inv31);
        odd[20] = 3.0; // a bump that no single transition makes
        odd[40] = 1.5;
        assert!(fit(&odd, &inv31).unwrap_err().contains("do not follow Llama 3"));
    }
}
