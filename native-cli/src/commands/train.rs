//! `llmql train`: LLM-QL stage 2 — contrastive training (Tevatron recipe) of a backbone as a
//! dense retriever, with LoRA in the reference implementation's recipe (`--lora`). The flags it
//! shares with `llmql ql-train` live in [`super::training_args`].
use super::input_settings::{self, EncoderArgs, LengthArgs};
use super::training_args::{CliStage, LoraArgs, ModelArgs, StageDefaults, TrainingArgs};
use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use llmql_core::formats::TevatronExample;
use llmql_core::model::DecoderModel;
use llmql_core::train::data_parallel::Collective;
use llmql_core::train::{
    contrastive_train_parallel, ContrastiveConfig, TrainObserver, TrainRun, TrainSettings, Warmup,
};
use llmql_core::trained_with::TrainedWith;
use llmql_core::ModelSource;

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub training: TrainingArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
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

/// Stage 2 with its examples, as the shared command code runs it.
struct Stage {
    examples: Vec<TevatronExample>,
    cfg: ContrastiveConfig,
    record: TrainedWith,
}

impl CliStage for Stage {
    const NAME: &'static str = "train";
    /// The retriever does not use lm_head; full fine-tuning keeps it so exports stay complete.
    fn lm_head(&self, settings: &TrainSettings) -> bool {
        settings.lora.is_none()
    }
    fn train<B: AutodiffBackend, C: Collective>(
        &self,
        model: DecoderModel<B>,
        ckpt: &ModelSource,
        run: &TrainRun<'_>,
        observer: &mut dyn TrainObserver,
        c: &C,
    ) -> llmql_core::Result<DecoderModel<B>> {
        contrastive_train_parallel(model, &ckpt.tokenizer, &self.examples, &self.cfg, run, observer, c)
    }
    fn save_final<B: AutodiffBackend>(
        &self,
        model: &DecoderModel<B>,
        ckpt: &ModelSource,
        out: &std::path::Path,
    ) -> Result<()> {
        let src = ckpt.source_files();
        match &self.cfg.train.lora {
            // A LoRA run's result is the PEFT adapter (merge it with `llmql merge-lora`).
            Some(lc) => llmql_core::lora::save_adapter(model, lc, &src.name, out)?,
            None => crate::output::save_final_model(model, &src, out, self.cfg.train.save_dtype)?,
        }
        self.record.write(out)?;
        Ok(())
    }
}

pub fn run(a: TrainArgs) -> Result<()> {
    let peers = a.training.peers()?;
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
    let sources = input_settings::trained_with(&a.model.model, None)?;
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
        train: a.training.settings(stage, &a.lora, a.model.dtype()?),
    };
    super::training_args::validate(&cfg.train, cfg.validate())?;
    let examples = super::training_args::read_train_data(&a.training.train_data)?;
    let stage = Stage { examples, cfg, record: TrainedWith::new("train", Some(enc.record()), None) };
    super::training_args::run_stage(&stage, &a.model, &a.training, &peers, &stage.cfg.train)
}
