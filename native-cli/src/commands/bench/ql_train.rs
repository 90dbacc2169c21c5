//! `llmql bench ql-train`: stage-1 training throughput through `llmql ql-train`'s own loop
//! ([`ql_train_parallel`]: Input Corruption, Attention Stop, token-normalised loss, AdamW with the
//! linear schedule, clipping), steps+1 steps of which the first is the untimed warm-up; no
//! intermediate checkpoints, the final save (into a scratch folder) is not timed. Same keys as
//! `bench/pytorch_ql_train.py`, which trains on the very batches this run dumps (`--dump-batches`).
use super::timed_training;
use anyhow::Result;
use clap::Args;
use llmql_backends::DeviceSpec;
use llmql_core::formats::read_tevatron;
use llmql_core::ql::example::passage_text;
use llmql_core::ql::LossOn;
use llmql_core::train::data_parallel::Single;
use llmql_core::train::{ql_train_parallel, QlPair, QlTrainConfig, TrainSettings, Warmup};
use llmql_core::weights::StoredDtype;
use llmql_core::ModelSource;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct BenchQlTrainArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Tevatron jsonl (query + positive_passages): one pair per positive, as `llmql ql-train`.
    #[arg(long)]
    pub train_data: PathBuf,
    /// Timed steps (after one untimed warm-up step).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 200)]
    pub p_max_len: usize,
    #[arg(long, default_value_t = 200)]
    pub q_max_len: usize,
    #[arg(long, default_value_t = 1e-5)]
    pub lr: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, default_value = "all")]
    pub loss_on: String,
    /// Input Corruption (as `ql-train --mask-probability`).
    #[arg(long, default_value_t = 0.6)]
    pub mask_probability: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Compute dtype: f32 | bf16 | f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Gradient checkpointing per decoder layer (as `ql-train --gradient-checkpointing`).
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// Burn's op-level recomputation (as `ql-train --op-checkpointing`).
    #[arg(long)]
    pub op_checkpointing: bool,
    /// Write every step's batch (token ids, separator) as JSON lines, for bench/pytorch_ql_train.py --batches.
    #[arg(long)]
    pub dump_batches: Option<PathBuf>,
}

struct Task {
    a: BenchQlTrainArgs,
    ckpt: ModelSource,
    pairs: Vec<QlPair>,
    cfg: QlTrainConfig,
}

impl llmql_backends::AutodiffTask for Task {
    type Output = Result<serde_json::Value>;
    fn run<B: burn::tensor::backend::AutodiffBackend>(self, device: B::Device) -> Result<serde_json::Value> {
        let a = &self.a;
        let dtype = crate::commands::parse_dtype(&a.dtype)?;
        let model = self.ckpt.load_model::<B>(crate::commands::training_load(dtype, false, true), &device)?;
        let src = self.ckpt.source_files();
        let own = serde_json::json!({
            "batch_size": a.batch_size,
            "p_max_len": a.p_max_len,
            "q_max_len": a.q_max_len,
            "mask_probability": a.mask_probability,
            "gradient_checkpointing": a.gradient_checkpointing,
            "device": a.device,
        });
        timed_training("ql-train", &src, a.steps, a.dump_batches.as_deref(), own, |run, clock| {
            ql_train_parallel(model, &self.ckpt.tokenizer, &self.pairs, &self.cfg, run, clock, &Single)?;
            Ok(())
        })
    }
}

pub fn run(a: BenchQlTrainArgs) -> Result<serde_json::Value> {
    let device: DeviceSpec = a.device.parse()?;
    let ckpt = ModelSource::open(&a.model)?;
    let mut pairs = Vec::new();
    for ex in read_tevatron(&a.train_data)? {
        for p in &ex.positive_passages {
            let title = (!p.title.is_empty()).then_some(p.title.as_str());
            pairs.push(QlPair { passage: passage_text(title, &p.text), query: ex.query.clone() });
        }
    }
    anyhow::ensure!(!pairs.is_empty(), "{}: no (query, positive passage) pairs", a.train_data.display());
    let loss_on: LossOn = a.loss_on.parse().map_err(anyhow::Error::msg)?;
    let cfg = QlTrainConfig {
        mask_probability: a.mask_probability,
        p_max_len: a.p_max_len,
        q_max_len: a.q_max_len,
        loss_on,
        train: TrainSettings {
            learning_rate: a.lr,
            max_steps: Some(a.steps + 1),
            per_device_train_batch_size: a.batch_size,
            // The first update uses the full learning rate, as the PyTorch side's constant one.
            warmup: Warmup::Ratio(0.0),
            max_grad_norm: (a.max_grad_norm > 0.0).then_some(a.max_grad_norm),
            seed: a.seed,
            logging_steps: 1,
            save_steps: 0,
            save_dtype: StoredDtype::F32,
            grad_checkpoint: a.gradient_checkpointing,
            ..TrainSettings::stage1()
        },
        ..QlTrainConfig::default()
    };
    let ckp = a.op_checkpointing;
    llmql_backends::run_autodiff_on(&device, ckp, Task { a, ckpt, pairs, cfg })?
}
