//! `llmql train`: LLM-QL stage 2 — contrastive training (Tevatron recipe) of a backbone as a
//! dense retriever, with LoRA in the reference implementation's recipe (`--lora`). The flags it
//! shares with `llmql ql-train` live in [`super::training_args`].
use super::input_settings::{self, EncoderArgs, LengthArgs};
use super::training_args::{CliStage, StageArgs, StageData, StageDefaults, StageOutput};
use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use llmql_core::formats::TevatronExample;
use llmql_core::tokenizer::TextTokenizer;
use llmql_core::train::{ContrastiveConfig, ContrastiveStage, TrainStage, Warmup};
use llmql_core::trained_with::TrainedWith;

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// The model, the run and LoRA (as the other training command).
    #[command(flatten)]
    pub common: StageArgs,
    /// Template, truncation, pooling, normalisation (as `llmql encode`; recorded in the output's
    /// llmql.json, which `encode`, `serve` and `export-web` follow).
    #[command(flatten)]
    pub encoder: EncoderArgs,
    #[command(flatten)]
    pub lengths: LengthArgs,
    #[arg(long, default_value_t = 0.01)]
    pub temperature: f64,
    #[arg(long, default_value_t = 16)]
    pub train_group_size: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 1)]
    pub num_train_epochs: usize,
    #[arg(long, default_value_t = 4)]
    pub per_device_train_batch_size: usize,
    #[arg(long, default_value_t = 100)]
    pub warmup_steps: usize,
    /// Accepted for compatibility with the reference implementation's command line (EOS is
    /// always appended).
    #[arg(long)]
    pub append_eos_token: bool,
    /// Accepted for compatibility (output folders are reused; checkpoints are replaced atomically).
    #[arg(long)]
    pub overwrite_output_dir: bool,
}

impl CliStage for StageData<TevatronExample, ContrastiveConfig> {
    fn core<'a, B: AutodiffBackend>(&'a self, tok: &'a TextTokenizer) -> impl TrainStage<B> + 'a {
        ContrastiveStage::new(tok, &self.items, &self.cfg)
    }
}

pub fn run(a: TrainArgs) -> Result<()> {
    let peers = a.common.training.peers()?;
    let stage = StageDefaults {
        learning_rate: a.learning_rate,
        num_train_epochs: a.num_train_epochs,
        per_device_train_batch_size: a.per_device_train_batch_size,
        warmup: Warmup::Steps(a.warmup_steps),
        // The layout Tevatron and the reference's stage 2 write (PEFT on AutoModel).
        adapter_layout: llmql_core::lora::AdapterLayout::AutoModel,
    };
    // The base model's own record counts (a stage-2 model trained further); a stage-1 model
    // records only query likelihood's lengths.
    let sources = input_settings::trained_with(&a.common.model.model, None)?;
    let enc =
        input_settings::resolve_encoder("train", &a.encoder, &a.lengths, &input_settings::encoder_sources(&sources))?;
    let cfg = ContrastiveConfig {
        template: enc.template,
        pooling: enc.pooling,
        normalize: enc.normalize,
        temperature: a.temperature,
        train_group_size: a.train_group_size,
        query_max_len: enc.query_max_len,
        passage_max_len: enc.passage_max_len,
        truncation: enc.truncation,
        train: a.common.settings(stage)?,
    };
    super::training_args::validate(&cfg.train, cfg.validate())?;
    let examples = super::training_args::read_train_data(&a.common.training.train_data)?;
    let output = StageOutput { causal_lm: false, record: TrainedWith::new("train", Some(enc.record()), None) };
    super::training_args::run_stage(&StageData { items: examples, cfg }, &output, &a.common, &peers)
}
