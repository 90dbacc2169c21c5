//! `llmql bench train`: stage-2 (contrastive, LoRA) step time through `llmql train`'s own loop
//! ([`contrastive_train_parallel`]: Tevatron group sampling, eos pooling, InfoNCE, AdamW with the
//! linear schedule, clipping), steps+1 steps of which the first is the untimed warm-up; no
//! intermediate checkpoints, the final save (into a scratch folder) is not timed. Same keys as
//! `bench/pytorch_train_contrastive.py`, which trains on the very batches this run dumps
//! (`--dump-batches`).
use super::timed_training;
use anyhow::Result;
use clap::Args;
use llmql_backends::DeviceSpec;
use llmql_core::formats::{read_tevatron, TevatronExample};
use llmql_core::lora::LoraConfig;
use llmql_core::train::data_parallel::Single;
use llmql_core::train::{contrastive_train_parallel, ContrastiveConfig, TrainSettings, Warmup};
use llmql_core::weights::StoredDtype;
use llmql_core::ModelSource;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct BenchTrainArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub train_data: PathBuf,
    /// Timed steps (after one untimed warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 16)]
    pub train_group_size: usize,
    #[arg(long, default_value_t = 32)]
    pub query_max_len: usize,
    #[arg(long, default_value_t = 128)]
    pub passage_max_len: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 32)]
    pub lora_r: usize,
    #[arg(long, default_value_t = 64.0)]
    pub lora_alpha: f64,
    #[arg(long, default_value_t = 0.1)]
    pub lora_dropout: f64,
    #[arg(long, default_value_t = 0.01)]
    pub temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Compute dtype of the base weights: f32 | bf16 | f16 (LoRA adapters stay f32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Gradient checkpointing per decoder layer (as `train --gradient-checkpointing`).
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// Burn's op-level recomputation (as `train --op-checkpointing`).
    #[arg(long)]
    pub op_checkpointing: bool,
    /// Write every step's token ids (queries, passages) as JSON lines, for
    /// bench/pytorch_train_contrastive.py --batches.
    #[arg(long)]
    pub dump_batches: Option<PathBuf>,
}

struct Task {
    a: BenchTrainArgs,
    ckpt: ModelSource,
    examples: Vec<TevatronExample>,
    cfg: ContrastiveConfig,
}

impl llmql_backends::AutodiffTask for Task {
    type Output = Result<serde_json::Value>;
    fn run<B: burn::tensor::backend::AutodiffBackend>(self, device: B::Device) -> Result<serde_json::Value> {
        let a = &self.a;
        let dtype = crate::commands::parse_dtype(&a.dtype)?;
        let model = self.ckpt.load_model::<B>(crate::commands::training_load(dtype, true, false), &device)?;
        let lc = self.cfg.train.lora.as_ref().expect("LoRA");
        let model = llmql_core::lora::attach_lora(model, lc, self.cfg.train.seed)?;
        let src = self.ckpt.source_files();
        let own = serde_json::json!({
            "batch_size": a.batch_size,
            "group": a.train_group_size,
            "gradient_checkpointing": a.gradient_checkpointing,
            "device": a.device,
        });
        timed_training("train", &src, a.steps, a.dump_batches.as_deref(), own, |run, clock| {
            contrastive_train_parallel(model, &self.ckpt.tokenizer, &self.examples, &self.cfg, run, clock, &Single)?;
            Ok(())
        })
    }
}

pub fn run(a: BenchTrainArgs) -> Result<serde_json::Value> {
    let device: DeviceSpec = a.device.parse()?;
    let ckpt = ModelSource::open(&a.model)?;
    let examples = read_tevatron(&a.train_data)?;
    anyhow::ensure!(!examples.is_empty(), "{}: no training examples", a.train_data.display());
    let cfg = ContrastiveConfig {
        temperature: a.temperature,
        train_group_size: a.train_group_size,
        query_max_len: a.query_max_len,
        passage_max_len: a.passage_max_len,
        train: TrainSettings {
            learning_rate: a.lr,
            max_steps: Some(a.steps + 1),
            per_device_train_batch_size: a.batch_size,
            // The first update uses the full learning rate, as the PyTorch side's constant one.
            warmup: Warmup::Steps(0),
            max_grad_norm: (a.max_grad_norm > 0.0).then_some(a.max_grad_norm),
            seed: a.seed,
            logging_steps: 1,
            save_steps: 0,
            save_dtype: StoredDtype::F32,
            lora: Some(LoraConfig {
                r: a.lora_r,
                lora_alpha: a.lora_alpha,
                lora_dropout: a.lora_dropout,
                ..LoraConfig::default()
            }),
            grad_checkpoint: a.gradient_checkpointing,
            ..TrainSettings::stage2()
        },
        ..ContrastiveConfig::default()
    };
    let ckp = a.op_checkpointing;
    llmql_backends::run_autodiff_on(&device, ckp, Task { a, ckpt, examples, cfg })?
}
