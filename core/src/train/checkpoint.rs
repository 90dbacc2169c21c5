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
    /// The run that wrote this checkpoint ([`RUN_FILE`]); `None` in checkpoints of older llmql.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Devices (peers) of the run. `None` (older checkpoints) is not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_size: Option<usize>,
    /// Peak learning rate and warmup steps of the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<usize>,
    /// A hash of the training examples' text ([`Fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_fingerprint: Option<String>,
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
            run_id: None,
            world_size: None,
            learning_rate: None,
            warmup_steps: None,
            data_fingerprint: None,
        }
    }

    /// Records what else a resume must agree on: devices, schedule and data.
    pub fn with_run(
        mut self,
        world_size: usize,
        learning_rate: f64,
        warmup_steps: usize,
        data_fingerprint: String,
    ) -> Self {
        self.world_size = Some(world_size);
        self.learning_rate = Some(learning_rate);
        self.warmup_steps = Some(warmup_steps);
        self.data_fingerprint = Some(data_fingerprint);
        self
    }

    /// The settings in which `self` (a checkpoint's state) differs from `want` (this run's), by
    /// name; settings an older checkpoint did not record are not compared.
    pub fn differences(&self, want: &TrainerState) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |name: &str, saved: String, now: String, recorded: bool| {
            if recorded && saved != now {
                d.push(format!("{name} {saved} (now {now})"));
            }
        };
        cmp("examples", self.num_examples.to_string(), want.num_examples.to_string(), true);
        cmp(
            "per-device batch size",
            self.per_device_train_batch_size.to_string(),
            want.per_device_train_batch_size.to_string(),
            true,
        );
        cmp(
            "gradient accumulation",
            self.gradient_accumulation_steps.to_string(),
            want.gradient_accumulation_steps.to_string(),
            true,
        );
        cmp("seed", self.seed.to_string(), want.seed.to_string(), true);
        cmp("total steps", self.total_steps.to_string(), want.total_steps.to_string(), self.world_size.is_some());
        // Settings an older checkpoint may not have recorded: compared where it did.
        fn shown<T: ToString>(v: &Option<T>) -> String {
            v.as_ref().map_or_else(|| "-".into(), T::to_string)
        }
        for (name, saved, now, recorded) in [
            ("devices", shown(&self.world_size), shown(&want.world_size), self.world_size.is_some()),
            ("learning rate", shown(&self.learning_rate), shown(&want.learning_rate), self.learning_rate.is_some()),
            ("warmup steps", shown(&self.warmup_steps), shown(&want.warmup_steps), self.warmup_steps.is_some()),
            (
                "training data",
                shown(&self.data_fingerprint),
                shown(&want.data_fingerprint),
                self.data_fingerprint.is_some(),
            ),
        ] {
            cmp(name, saved, now, recorded);
        }
        d
    }
}

/// A 64-bit FNV-1a hash over length-prefixed strings: the training data's fingerprint (stable
/// across runs, platforms and Rust versions; not a defence against crafted collisions, which a
/// resume does not need).
#[derive(Debug, Clone)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    pub fn add(&mut self, s: &str) -> &mut Self {
        for b in (s.len() as u64).to_le_bytes().iter().chain(s.as_bytes()) {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer";
/// `OUT/llmql-run.json`: the id of the run that writes checkpoints into `OUT` now. A fresh run
/// writes a new id; `--resume` keeps it and only takes checkpoints that carry it, so checkpoints
/// left by an earlier run in the same folder are never resumed (nor rotated away in its place).
pub const RUN_FILE: &str = "llmql-run.json";

/// The run id recorded in `out` ([`RUN_FILE`]); `None` when there is none (a fresh folder, or
/// the output of an older llmql).
pub fn read_run_id(out: &Path) -> Result<Option<String>> {
    let p = out.join(RUN_FILE);
    match std::fs::read(&p) {
        Ok(bytes) => {
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|source| Error::Json { path: p.clone(), source })?;
            let id =
                v.get("run_id").and_then(|x| x.as_str()).ok_or_else(|| Error::config(&p, "missing field `run_id`"))?;
            Ok(Some(id.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&p, e)),
    }
}

/// A new run id, written to `out`'s [`RUN_FILE`] when `write` (the peer that saves).
pub fn new_run_id(out: &Path, write: bool) -> Result<String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let id = format!("{nanos:x}-{:x}", std::process::id());
    if write {
        let text = serde_json::to_vec_pretty(&serde_json::json!({ "run_id": id })).expect("json");
        crate::output::write_file_atomic(&out.join(RUN_FILE), &text)?;
    }
    Ok(id)
}

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

/// Checkpoints of `out` that belong to run `run_id` (all when `None`), oldest first; an unreadable
/// state file counts as not belonging.
pub fn run_checkpoints(out: &Path, run_id: Option<&str>) -> Vec<(usize, PathBuf)> {
    list_checkpoints(out)
        .into_iter()
        .filter(|(_, p)| run_id.is_none() || read_state(p).is_ok_and(|s| s.run_id.as_deref() == run_id))
        .collect()
}

/// Deletes the oldest checkpoints of run `run_id` so that at most `limit` of them remain (the
/// checkpoints of other runs are not this run's to delete).
pub fn rotate(out: &Path, limit: Option<usize>, run_id: Option<&str>) {
    if let Some(limit) = limit {
        let all = run_checkpoints(out, run_id);
        if all.len() > limit {
            for (_, p) in &all[..all.len() - limit] {
                tracing::info!("deleting old checkpoint {}", p.display());
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
}

/// Restores the newest usable checkpoint of `out` onto `model` and `optim`: the full weights, or
/// with LoRA only the adapter (the frozen base stays as loaded). Checkpoints of another run
/// (`expect.run_id`) are skipped with a warning; one of this run made with other settings
/// ([`TrainerState::differences`]) is refused; one that cannot be read (state, weights or
/// optimizer) is skipped for the one before it, with a warning.
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
    let device = model.device();
    let mut skipped = Vec::new();
    for (_, dir) in list_checkpoints(out).into_iter().rev() {
        let saved = match read_state(&dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("--resume: skipping unreadable {}: {e}", dir.display());
                skipped.push(dir.display().to_string());
                continue;
            }
        };
        if expect.run_id.is_some() && saved.run_id != expect.run_id {
            tracing::warn!(
                "--resume: ignoring {}: written by another run in this folder (run {}, this run is {})",
                dir.display(),
                saved.run_id.as_deref().unwrap_or("of an older llmql"),
                expect.run_id.as_deref().unwrap_or("-")
            );
            continue;
        }
        let diff = saved.differences(expect);
        if !diff.is_empty() {
            return Err(Error::Other(format!(
                "{}: cannot resume: the checkpoint was made with other settings: {}",
                dir.display(),
                diff.join(", ")
            )));
        }
        let loaded = (|| -> Result<_> {
            let m = match lora {
                Some(lc) => crate::lora::fill_adapter(model.clone(), &dir, lc)?,
                None => {
                    let ck = crate::ModelSource::open(&dir)?;
                    ck.load_model(
                        crate::model::LoadOptions {
                            dtype: model.dtype(),
                            lm_head: model.lm_head.is_some(),
                            host_embeddings: false,
                            compute_dtype: model.compute_dtype,
                        },
                        &device,
                    )?
                }
            };
            let rec = BinFileRecorder::<FullPrecisionSettings>::new()
                .load(dir.join(OPTIMIZER_FILE), &device)
                .map_err(|e| Error::Other(format!("{}: cannot load optimizer state: {e}", dir.display())))?;
            Ok((m, rec))
        })();
        match loaded {
            Ok((m, rec)) => {
                tracing::info!("resuming from {} (step {})", dir.display(), saved.global_step);
                return Ok((m, optim.load_record(rec), Some(saved)));
            }
            Err(e) => {
                tracing::warn!("--resume: skipping unreadable {}: {e}", dir.display());
                skipped.push(dir.display().to_string());
            }
        }
    }
    if !skipped.is_empty() {
        tracing::warn!(
            "--resume: no readable checkpoint of this run in {} (unreadable: {}); starting from scratch",
            out.display(),
            skipped.join(", ")
        );
    } else {
        tracing::info!("--resume: no checkpoint of this run in {}, starting from scratch", out.display());
    }
    Ok((model, optim, None))
}

/// Writes `out/checkpoint-{step}` atomically (HF folder with merged weights in
/// `settings.save_dtype`, the PEFT adapter when training LoRA, trainer state and optimizer state)
/// and rotates old checkpoints (`settings.save_total_limit`).
pub fn save_checkpoint<B, O>(
    out: &Path,
    model: &crate::model::DecoderModel<B>,
    optim: &O,
    state: &TrainerState,
    source: &crate::model_source::SourceFiles,
    settings: &super::settings::TrainSettings,
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
    crate::export::save_hf_folder(&valid, source, &dir, settings.save_dtype, &mut |tmp: &Path| {
        write_state(tmp, state)?;
        if let Some(lc) = &settings.lora {
            crate::lora::save_adapter(&valid, lc, &source.name, tmp)?;
        }
        BinFileRecorder::<FullPrecisionSettings>::new()
            .record(rec.take().expect("written once"), tmp.join(OPTIMIZER_FILE))
            .map_err(|e| Error::Other(format!("{}: cannot save optimizer state: {e}", tmp.display())))?;
        Ok(())
    })?;
    rotate(out, settings.save_total_limit, state.run_id.as_deref());
    Ok(dir)
}
