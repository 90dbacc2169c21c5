//! Pieces both training loops share: the logging window and the non-finite-loss stop.
use super::checkpoint::{list_checkpoints, LogEntry, TrainerState};
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
        };
        *self = Self::default();
        e
    }
}

/// Stops training on a NaN/inf loss, naming the last good checkpoint.
pub fn ensure_finite(loss: f64, step: usize, out: &Path) -> Result<()> {
    if loss.is_finite() {
        return Ok(());
    }
    let last = list_checkpoints(out).pop().map(|(_, p)| p.display().to_string());
    Err(Error::Other(format!(
        "loss is {loss} at step {}: stopping (last good checkpoint: {})",
        step + 1,
        last.unwrap_or_else(|| "none".into())
    )))
}
