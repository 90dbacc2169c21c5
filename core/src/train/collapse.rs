//! Detecting a collapsed contrastive run.
//!
//! A stage-2 run can collapse: every text gets (nearly) the same vector, all scores are equal, and
//! InfoNCE sits at `ln(candidates)` — the loss of a uniform guess among a query's candidates —
//! while retrieval is at chance. Seen on a harder collection with the quickstart's early recipe
//! (and in a faithful PyTorch + PEFT run of it), so it is the recipe, not a kernel. The monitor
//! follows two signals over each logging window: the loss relative to `ln(candidates)` and the
//! mean pairwise cosine of the batch's passage embeddings (from `||sum of unit vectors||^2`, no
//! n x n matrix). Both near their collapse values: a warning that says what to change.
use burn::tensor::{backend::Backend, ElementConversion, Tensor};

/// Mean cosine between distinct rows of `x` (`[n, d]`), as a host value; 1 when `n < 2`.
pub fn mean_pairwise_cosine<B: Backend>(x: Tensor<B, 2>) -> f64 {
    let n = x.dims()[0];
    if n < 2 {
        return 1.0;
    }
    let unit = x.clone() / (x.powi_scalar(2).sum_dim(1).sqrt() + 1e-12);
    let s: f64 = unit.sum_dim(0).powi_scalar(2).sum().into_scalar().elem();
    (s - n as f64) / (n * (n - 1)) as f64
}

/// Thresholds: loss above this fraction of `ln(candidates)` ...
pub const LOSS_FRACTION: f64 = 0.9;
/// ... and passage embeddings this similar on average.
pub const COSINE: f64 = 0.9;

/// Loss and embedding similarity of the steps since the last log line.
#[derive(Debug, Default)]
pub struct CollapseMonitor {
    loss: f64,
    cosine: f64,
    steps: usize,
    candidates: usize,
    warned: bool,
}

impl CollapseMonitor {
    /// One step: its loss, the number of candidates each query is scored against, and the mean
    /// pairwise cosine of its passage embeddings.
    pub fn add(&mut self, loss: f64, candidates: usize, cosine: f64) {
        self.loss += loss;
        self.cosine += cosine;
        self.steps += 1;
        self.candidates = candidates;
    }

    /// Ends the window: the mean cosine (for the log), after warning if the window looks collapsed.
    pub fn flush(&mut self, step: usize) -> Option<f64> {
        if self.steps == 0 {
            return None;
        }
        let (loss, cosine) = (self.loss / self.steps as f64, self.cosine / self.steps as f64);
        let uniform = (self.candidates.max(1) as f64).ln();
        if is_collapsed(loss, uniform, cosine) {
            tracing::warn!(
                "stage 2 looks collapsed at step {step}: loss {loss:.3} is near ln({}) = {uniform:.3} (a uniform guess) and \
                 passage embeddings have mean cosine {cosine:.3}. Retrieval is likely at chance. If the base model's \
                 vectors start this alike, train stage 1 first (QL training shapes the EOS state); otherwise lower the \
                 learning rate or lengthen warmup, use more in-batch negatives (batch size, group size) or a higher \
                 temperature{}",
                self.candidates,
                if self.warned { "" } else { "; see README \"The recipe\"" }
            );
            self.warned = true;
        }
        *self = Self { warned: self.warned, ..Default::default() };
        Some(cosine)
    }
}

/// The collapse rule: loss within [`LOSS_FRACTION`] of `ln(candidates)` and mean cosine above [`COSINE`].
pub fn is_collapsed(loss: f64, ln_candidates: f64, cosine: f64) -> bool {
    ln_candidates > 0.0 && loss >= LOSS_FRACTION * ln_candidates && cosine >= COSINE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule() {
        let ln8 = 8f64.ln();
        assert!(is_collapsed(2.05, ln8, 0.99));
        assert!(!is_collapsed(2.05, ln8, 0.3), "a hard batch is not a collapse");
        assert!(!is_collapsed(0.5, ln8, 0.99), "similar vectors that still rank well");
    }
}
