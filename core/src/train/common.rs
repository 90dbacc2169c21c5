//! Pieces both training loops share: the logging window and the non-finite-loss stop.
use super::checkpoint::{list_checkpoints, run_checkpoints, LogEntry, TrainerState};
use crate::error::{Error, Result};
use std::path::Path;
use std::time::Instant;

/// Loss and tokens accumulated since the last log line.
pub struct LogWindow {
    loss: f64,
    steps: usize,
    tokens: usize,
    start: Instant,
}

impl Default for LogWindow {
    fn default() -> Self {
        Self { loss: 0.0, steps: 0, tokens: 0, start: Instant::now() }
    }
}

impl LogWindow {
    pub fn add(&mut self, loss: f64, tokens: usize) {
        self.loss += loss;
        self.steps += 1;
        self.tokens += tokens;
    }

    /// The log entry for the window (mean loss, tokens/s), which then starts afresh.
    pub fn flush(&mut self, state: &TrainerState, lr: f64, grad_norm: f64) -> LogEntry {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let e = LogEntry {
            step: state.global_step,
            epoch: state.epoch,
            loss: self.loss / self.steps.max(1) as f64,
            learning_rate: lr,
            grad_norm,
            tokens_per_s: self.tokens as f64 / secs,
            embedding_cosine: None,
        };
        *self = Self::default();
        e
    }
}

/// Stops training on a NaN/inf loss, naming the last good checkpoint of this run.
pub fn ensure_finite(loss: f64, step: usize, out: &Path, run_id: Option<&str>) -> Result<()> {
    if loss.is_finite() {
        return Ok(());
    }
    let last = run_checkpoints(out, run_id).pop().map(|(_, p)| p.display().to_string()).or_else(|| {
        list_checkpoints(out)
            .pop()
            .map(|(_, p)| format!("none of this run; the newest in the folder is {} (an earlier run)", p.display()))
    });
    Err(Error::Other(format!(
        "loss is {loss} at step {}: stopping (last good checkpoint: {})",
        step + 1,
        last.unwrap_or_else(|| "none".into())
    )))
}

/// Mixes a run seed with a step number (the per-step backend seed for dropout).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut x = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^ (x >> 33)
}

/// The example order of `epoch` (a seeded shuffle).
pub fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut crate::ql::corruption::example_rng(seed, epoch as u64, u64::MAX));
    order
}

/// `(steps per epoch, total steps)` for `n` examples, micro-batches of `bs`, `accum` of them per step.
/// As in the HF Trainer, `max_steps` overrides the epoch count (the data is cycled, each epoch in
/// its own order).
pub fn step_counts(n: usize, bs: usize, accum: usize, epochs: usize, max_steps: Option<usize>) -> (usize, usize) {
    let per_epoch = n.div_ceil(bs).div_ceil(accum);
    (per_epoch, max_steps.unwrap_or(per_epoch * epochs.max(1)))
}

/// The optimizer both stages use: AdamW (betas 0.9/0.999, eps 1e-8, as torch/transformers).
pub type TrainOptimizer<B> =
    burn::optim::adaptor::OptimizerAdaptor<super::adamw::FusedAdamW, crate::model::DecoderModel<B>, B>;

/// Creates the optimizer and the output folder, gives the run its id (a new one, written by rank
/// 0, unless `resume` continues the run recorded in `out`; see
/// [`super::checkpoint::RUN_FILE`]), and with `resume` restores the newest checkpoint of this
/// run (weights or LoRA adapter, optimizer, step, log) into them and into `state`.
pub fn start_run<B: burn::tensor::backend::AutodiffBackend>(
    model: crate::model::DecoderModel<B>,
    out: &Path,
    resume: bool,
    rank: usize,
    lora: Option<&crate::lora::LoraConfig>,
    weight_decay: f64,
    state: &mut TrainerState,
) -> Result<(crate::model::DecoderModel<B>, TrainOptimizer<B>)> {
    let optim = burn::optim::adaptor::OptimizerAdaptor::from(super::adamw::FusedAdamW::new(weight_decay as f32));
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let recorded = if resume { super::checkpoint::read_run_id(out)? } else { None };
    // A fresh run, or a resume with nothing to resume, starts a new run id; a resume of an older
    // llmql's output (checkpoints without ids) keeps none and compares settings only.
    state.run_id = match recorded {
        Some(id) => Some(id),
        None if !resume || list_checkpoints(out).is_empty() => Some(super::checkpoint::new_run_id(out, rank == 0)?),
        None => None,
    };
    if !resume {
        let older = list_checkpoints(out);
        if rank == 0 && !older.is_empty() {
            tracing::warn!(
                "{} holds {} checkpoint(s) of an earlier run (newest {}); this run ignores them (and --resume of it will too)",
                out.display(),
                older.len(),
                older.last().map(|(_, p)| p.display().to_string()).unwrap_or_default()
            );
        }
        return Ok((model, optim));
    }
    let (model, optim, saved) = super::checkpoint::resume_newest(out, model, optim, lora, state)?;
    if let Some(saved) = saved {
        state.log_history = saved.log_history;
        state.global_step = saved.global_step;
    }
    Ok((model, optim))
}

#[cfg(test)]
mod tests {
    use super::step_counts;

    #[test]
    fn max_steps_overrides_epochs() {
        // 10 examples, batch 4: 3 steps an epoch.
        assert_eq!(step_counts(10, 4, 1, 2, None), (3, 6));
        assert_eq!(step_counts(10, 4, 1, 1, Some(7)), (3, 7));
        assert_eq!(step_counts(10, 4, 1, 5, Some(2)), (3, 2));
        assert_eq!(step_counts(10, 2, 2, 1, None), (3, 3));
    }
}
