//! `llmql train`: LLM-QL stage 2 — contrastive training (Tevatron recipe) of a backbone as a
//! dense retriever, with LoRA in the reference implementation's recipe (`--lora`). The flags it
//! shares with `llmql ql-train` live in [`super::training_args`].
use super::training_args::{CliStage, LoraArgs, ModelArgs, StageDefaults, TrainingArgs};
use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use llmql_core::formats::TevatronExample;
use llmql_core::model::DecoderModel;
use llmql_core::pooling::Pooling;
use llmql_core::train::data_parallel::Collective;
use llmql_core::train::{
    contrastive_train_parallel, ContrastiveConfig, TrainObserver, TrainRun, TrainSettings, Warmup,
};
use llmql_core::{ModelSource, Template};

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub training: TrainingArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// eos (LLM-QL / RepLLaMA) or mean.
    #[arg(long, default_value = "eos")]
    pub pooling: String,
    /// L2-normalise embeddings (the default, as the reference implementation passes --normalize;
    /// the last of --normalize / --no-normalize wins).
    #[arg(long, overrides_with = "no_normalize")]
    pub normalize: bool,
    /// Train on unnormalised embeddings (dot product instead of cosine).
    #[arg(long, overrides_with = "normalize")]
    pub no_normalize: bool,
    #[arg(long, default_value_t = 0.01)]
    pub temperature: f64,
    #[arg(long, default_value_t = 16)]
    pub train_group_size: usize,
    /// Maximum query tokens including EOS (the llmql template alone takes ~29 SmolLM2 tokens).
    #[arg(long, default_value_t = llmql_core::template::DEFAULT_QUERY_MAX_LEN)]
    pub query_max_len: usize,
    /// Maximum passage tokens including EOS.
    #[arg(long, default_value_t = llmql_core::template::DEFAULT_PASSAGE_MAX_LEN)]
    pub passage_max_len: usize,
    #[command(flatten)]
    pub truncation: super::TruncationArgs,
    /// llmql | repllama | raw
    #[arg(long, default_value = "llmql")]
    pub template: String,
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
    let cfg = ContrastiveConfig {
        template: a.template.parse::<Template>().map_err(anyhow::Error::msg)?,
        pooling: a.pooling.parse::<Pooling>().map_err(anyhow::Error::msg)?,
        normalize: !a.no_normalize,
        temperature: a.temperature,
        train_group_size: a.train_group_size,
        query_max_len: a.query_max_len,
        passage_max_len: a.passage_max_len,
        truncation: a.truncation.truncation,
        train: a.training.settings(stage, &a.lora, a.model.dtype()?),
    };
    super::training_args::validate(&cfg.train, cfg.validate())?;
    let examples = super::training_args::read_train_data(&a.training.train_data)?;
    let stage = Stage { examples, cfg };
    super::training_args::run_stage(&stage, &a.model, &a.training, &peers, &stage.cfg.train)
}
