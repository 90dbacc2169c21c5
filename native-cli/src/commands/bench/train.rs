//! `llmql bench train`: stage-2 (contrastive, LoRA) step time through `llmql train`'s own loop
//! ([`ContrastiveStage`] in the shared loop: Tevatron group sampling, eos pooling, InfoNCE, AdamW with the
//! linear schedule, clipping), steps+1 steps of which the first is the untimed warm-up; no
//! intermediate checkpoints, the final save (into a scratch folder) is not timed. Same keys as
//! `bench/pytorch_train_contrastive.py`, which trains on the very batches this run dumps
//! (`--dump-batches`).
use super::{timed_training, BenchRunArgs};
use crate::commands::training_args::{read_train_data, LoraArgs};
use anyhow::Result;
use clap::Args;
use llmql_backends::DeviceSpec;
use llmql_core::formats::TevatronExample;
use llmql_core::lora::AdapterLayout;
use llmql_core::train::data_parallel::Single;
use llmql_core::train::{train, ContrastiveConfig, ContrastiveStage, TrainSettings};
use llmql_core::ModelSource;

#[derive(Args, Debug, Clone)]
pub struct BenchTrainArgs {
    #[command(flatten)]
    pub run: BenchRunArgs,
    /// Timed steps (after one untimed warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 16)]
    pub train_group_size: usize,
    /// Tevatron's and bench/pytorch_train_contrastive.py's default (not `llmql train`'s 64).
    #[arg(long, default_value_t = 32)]
    pub query_max_len: usize,
    /// Tevatron's and bench/pytorch_train_contrastive.py's default (not `llmql train`'s 192).
    #[arg(long, default_value_t = 128)]
    pub passage_max_len: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// The adapters, as `llmql train --lora` reads them (always on here).
    #[command(flatten)]
    pub lora: LoraArgs,
    #[arg(long, default_value_t = 0.01)]
    pub temperature: f64,
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
        let dtype = crate::commands::parse_dtype(&a.run.dtype)?;
        let model = self.ckpt.load_model::<B>(crate::commands::training_load(dtype, true, false), &device)?;
        let lc = self.cfg.train.lora.as_ref().expect("LoRA");
        let model = llmql_core::lora::attach_lora(model, lc, self.cfg.train.seed)?;
        let src = self.ckpt.source_files();
        let own = serde_json::json!({
            "batch_size": a.batch_size,
            "group": a.train_group_size,
            "gradient_checkpointing": a.run.gradient_checkpointing,
            "device": a.run.device,
        });
        let stage = &mut ContrastiveStage::new(&self.ckpt.tokenizer, &self.examples, &self.cfg);
        timed_training("train", &src, a.steps, a.run.dump_batches.as_deref(), own, |run, clock| {
            train(model, stage, run, clock, &Single)?;
            Ok(())
        })
    }
}

pub fn run(a: BenchTrainArgs) -> Result<serde_json::Value> {
    let device: DeviceSpec = a.run.device.parse()?;
    let ckpt = ModelSource::open(&a.run.model)?;
    // The examples and the adapters exactly as `llmql train --lora` reads them.
    let examples = read_train_data(std::slice::from_ref(&a.run.train_data))?;
    let lora = LoraArgs { lora: true, ..a.lora.clone() }.config(AdapterLayout::AutoModel);
    let cfg = ContrastiveConfig {
        temperature: a.temperature,
        train_group_size: a.train_group_size,
        query_max_len: a.query_max_len,
        passage_max_len: a.passage_max_len,
        train: TrainSettings { lora, ..a.run.settings(a.steps, a.lr, a.batch_size, TrainSettings::stage2()) },
        ..ContrastiveConfig::default()
    };
    let ckp = a.run.op_checkpointing;
    llmql_backends::run_autodiff_on(&device, ckp, Task { a, ckpt, examples, cfg })?
}
