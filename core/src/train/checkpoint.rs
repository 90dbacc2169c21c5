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
    /// Stage 2: mean pairwise cosine of the passage embeddings over the window (see
    /// [`super::collapse`]); near 1 with the loss near ln(candidates) means a collapse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_cosine: Option<f64>,
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

impl TrainerState {
    /// The state of a run that has not taken a step yet.
    pub fn new(total_steps: usize, seed: u64, num_examples: usize, batch: usize, accum: usize) -> Self {
        Self {
            global_step: 0,
            total_steps,
            epoch: 0.0,
            seed,
            num_examples,
            per_device_train_batch_size: batch,
            gradient_accumulation_steps: accum,
            log_history: Vec::new(),
        }
    }
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

/// Restores the newest checkpoint of `out` (if any) onto `model` and `optim`: the full weights,
/// or with LoRA only the adapter (the frozen base stays as loaded). Refuses a checkpoint made with
/// other data, batch size, accumulation or seed.
pub fn resume_newest<B, O>(
    out: &Path,
    model: crate::model::DecoderModel<B>,
    optim: O,
    lora: Option<&crate::lora::LoraConfig>,
    expect: &TrainerState,
) -> Result<(crate::model::DecoderModel<B>, O, Option<TrainerState>)>
where
    B: burn::tensor::backend::AutodiffBackend,
    O: burn::optim::Optimizer<crate::model::DecoderModel<B>, B>,
{
    use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
    let Some((_, dir)) = list_checkpoints(out).pop() else {
        tracing::info!("--resume: no checkpoint in {}, starting from scratch", out.display());
        return Ok((model, optim, None));
    };
    let saved = read_state(&dir)?;
    if saved.num_examples != expect.num_examples
        || saved.per_device_train_batch_size != expect.per_device_train_batch_size
        || saved.gradient_accumulation_steps != expect.gradient_accumulation_steps
        || saved.seed != expect.seed
    {
        return Err(Error::Other(format!(
            "{}: cannot resume: the checkpoint was made with other data, batch size, accumulation or seed",
            dir.display()
        )));
    }
    let device = model.device();
    let model = match lora {
        Some(lc) => crate::lora::fill_adapter(model, &dir, lc)?,
        None => {
            let ck = crate::Checkpoint::open(&dir)?;
            ck.load_model(crate::model::LoadOptions { dtype: model.dtype(), lm_head: model.lm_head.is_some(), host_embeddings: false, compute_dtype: model.compute_dtype }, &device)?
        }
    };
    let rec = BinFileRecorder::<FullPrecisionSettings>::new()
        .load(dir.join(OPTIMIZER_FILE), &device)
        .map_err(|e| Error::Other(format!("{}: cannot load optimizer state: {e}", dir.display())))?;
    tracing::info!("resuming from {} (step {})", dir.display(), saved.global_step);
    Ok((model, optim.load_record(rec), Some(saved)))
}

/// Writes `out/checkpoint-{step}` atomically (HF folder with merged weights, the PEFT adapter
/// when training LoRA, trainer state and optimizer state) and rotates old checkpoints.
#[allow(clippy::too_many_arguments)]
pub fn save_checkpoint<B, O>(
    out: &Path,
    model: &crate::model::DecoderModel<B>,
    optim: &O,
    state: &TrainerState,
    source: &crate::checkpoint::SourceFiles,
    dtype: crate::weights::StoredDtype,
    lora: Option<&crate::lora::LoraConfig>,
    limit: Option<usize>,
) -> Result<PathBuf>
where
    B: burn::tensor::backend::AutodiffBackend,
    O: burn::optim::Optimizer<crate::model::DecoderModel<B>, B>,
{
    use burn::module::AutodiffModule;
    use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
    let dir = out.join(format!("checkpoint-{}", state.global_step));
    let mut rec = Some(optim.to_record());
    let valid = model.valid();
    crate::export::save_hf_folder(&valid, source, &dir, dtype, &mut |tmp: &Path| {
        write_state(tmp, state)?;
        if let Some(lc) = lora {
            crate::lora::save_adapter(&valid, lc, &source.name, tmp)?;
        }
        BinFileRecorder::<FullPrecisionSettings>::new()
            .record(rec.take().expect("written once"), tmp.join(OPTIMIZER_FILE))
            .map_err(|e| Error::Other(format!("{}: cannot save optimizer state: {e}", tmp.display())))?;
        Ok(())
    })?;
    rotate(out, limit);
    Ok(dir)
}
