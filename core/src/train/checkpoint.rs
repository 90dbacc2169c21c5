//! Checkpoint folders `OUT/checkpoint-{step}`: a complete HF folder (loadable by transformers and
//! `llmql encode`) plus `trainer_state.json` and `optimizer.bin`. Written atomically (temporary
//! folder + rename), rotated to the newest `save_total_limit`, found again for `--resume`.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    pub step: usize,
    pub epoch: f64,
    pub loss: f64,
    pub learning_rate: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub global_step: usize,
    pub total_steps: usize,
    pub epoch: f64,
    pub seed: u64,
    /// Examples in the training set (a resume with other data is refused).
    pub num_examples: usize,
    pub per_device_train_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub log_history: Vec<LogEntry>,
}

pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer";

/// `checkpoint-N` folders of `out`, oldest first.
pub fn list_checkpoints(out: &Path) -> Vec<(usize, PathBuf)> {
    let mut v: Vec<(usize, PathBuf)> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n = name.strip_prefix("checkpoint-")?.parse::<usize>().ok()?;
            e.path().join(STATE_FILE).exists().then(|| (n, e.path()))
        })
        .collect();
    v.sort();
    v
}

pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let p = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path: p, source })
}

pub fn write_state(dir: &Path, s: &TrainerState) -> Result<()> {
    let p = dir.join(STATE_FILE);
    std::fs::write(&p, serde_json::to_vec_pretty(s).expect("json")).map_err(|e| Error::io(&p, e))
}

/// Deletes the oldest checkpoints so that at most `limit` remain.
pub fn rotate(out: &Path, limit: Option<usize>) {
    if let Some(limit) = limit {
        let all = list_checkpoints(out);
        if all.len() > limit {
            for (_, p) in &all[..all.len() - limit] {
                tracing::info!("deleting old checkpoint {}", p.display());
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
}
