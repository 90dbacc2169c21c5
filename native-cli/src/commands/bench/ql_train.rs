//! `llmql bench ql-train`: stage-1 training throughput through `llmql ql-train`'s own loop
//! ([`QlStage`] in the shared loop: Input Corruption, Attention Stop, token-normalised loss, AdamW with the
//! linear schedule, clipping), steps+1 steps of which the first is the untimed warm-up; no
//! intermediate checkpoints, the final save (into a scratch folder) is not timed. Same keys as
//! `bench/pytorch_ql_train.py`, which trains on the very batches this run dumps (`--dump-batches`).
use super::{timed_training, BenchRunArgs};
use crate::commands::input_settings::{resolve_ql, QlLengthArgs};
use anyhow::Result;
use clap::Args;
use llmql_backends::DeviceSpec;
use llmql_core::ql::LossOn;
use llmql_core::train::data_parallel::Single;
use llmql_core::train::{train, QlPair, QlStage, QlTrainConfig, TrainSettings};
use llmql_core::ModelSource;

#[derive(Args, Debug, Clone)]
pub struct BenchQlTrainArgs {
    #[command(flatten)]
    pub run: BenchRunArgs,
    /// Timed steps (after one untimed warm-up step).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Length limits as `llmql ql-train` reads them (the same defaults).
    #[command(flatten)]
    pub lengths: QlLengthArgs,
    #[arg(long, default_value_t = 1e-5)]
    pub lr: f64,
    #[arg(long, default_value = "all")]
    pub loss_on: String,
    /// Input Corruption (as `ql-train --mask-probability`).
    #[arg(long, default_value_t = 0.6)]
    pub mask_probability: f64,
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
        let dtype = crate::commands::parse_dtype(&a.run.dtype)?;
        let model = self.ckpt.load_model::<B>(crate::commands::training_load(dtype, false, true), &device)?;
        let src = self.ckpt.source_files();
        let own = serde_json::json!({
            "batch_size": a.batch_size,
            "p_max_len": self.cfg.p_max_len,
            "q_max_len": self.cfg.q_max_len,
            "mask_probability": a.mask_probability,
            "gradient_checkpointing": a.run.gradient_checkpointing,
            "device": a.run.device,
        });
        timed_training("ql-train", &src, a.steps, a.run.dump_batches.as_deref(), own, |run, clock| {
            train(model, &mut QlStage::new(&self.ckpt.tokenizer, &self.pairs, &self.cfg), run, clock, &Single)?;
            Ok(())
        })
    }
}

pub fn run(a: BenchQlTrainArgs) -> Result<serde_json::Value> {
    let device: DeviceSpec = a.run.device.parse()?;
    let ckpt = ModelSource::open(&a.run.model)?;
    // The pairs and lengths exactly as `llmql ql-train` makes them.
    let pairs = crate::commands::ql_train::read_pairs(std::slice::from_ref(&a.run.train_data))?;
    let lengths = resolve_ql("bench ql-train", &a.lengths, &[])?;
    let loss_on: LossOn = a.loss_on.parse().map_err(anyhow::Error::msg)?;
    let cfg = QlTrainConfig {
        mask_probability: a.mask_probability,
        p_max_len: lengths.p_max_len,
        q_max_len: lengths.q_max_len,
        truncation: lengths.truncation,
        loss_on,
        train: a.run.settings(a.steps, a.lr, a.batch_size, TrainSettings::stage1()),
        ..QlTrainConfig::default()
    };
    let ckp = a.run.op_checkpointing;
    llmql_backends::run_autodiff_on(&device, ckp, Task { a, ckpt, pairs, cfg })?
}
