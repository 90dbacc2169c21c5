//! `llmql ql-train`: LLM-QL stage 1 (query-likelihood modeling with Attention Stop and Input
//! Corruption) on Tevatron jsonl (`query` and `positive_passages` are used). The flags it shares
//! with `llmql train` live in [`super::training_args`].
use super::input_settings::{self, QlLengthArgs};
use super::training_args::{CliStage, StageArgs, StageData, StageDefaults, StageOutput};
use anyhow::{bail, Result};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use llmql_core::ql::example::passage_text;
use llmql_core::ql::LossOn;
use llmql_core::tokenizer::TextTokenizer;
use llmql_core::train::{QlPair, QlStage, QlTrainConfig, TrainStage, Warmup};
use llmql_core::trained_with::TrainedWith;

#[derive(Args, Debug, Clone)]
pub struct QlTrainArgs {
    /// The model, the run and LoRA (as the other training command).
    #[command(flatten)]
    pub common: StageArgs,
    /// Fraction of q2d examples (0 = only d2q, the reference implementation's setting; 0.5 = fair mix).
    #[arg(long, default_value_t = 0.0)]
    pub q2d_ratio: f64,
    /// The reference's `--rand_num` (overrides --q2d-ratio): <= 0 a fair coin per example,
    /// (0, 0.5] only d2q, > 0.5 only q2d.
    #[arg(long, allow_hyphen_values = true)]
    pub rand_num: Option<f64>,
    /// Input Corruption: probability of replacing each passage word by "_".
    #[arg(long, default_value_t = 0.6)]
    pub mask_probability: f64,
    /// Length limits and truncation (recorded in the output's llmql.json, which `rerank` and
    /// `generate-queries` follow).
    #[command(flatten)]
    pub lengths: QlLengthArgs,
    /// all (the reference: prompt, separator and query) | query (query tokens + closing EOS).
    #[arg(long, default_value = "all")]
    pub loss_on: String,
    /// Ablation: train with plain causal attention instead of Attention Stop.
    #[arg(long)]
    pub no_attention_stop: bool,
    #[arg(long, default_value_t = 1e-5)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 2)]
    pub num_train_epochs: usize,
    #[arg(long, default_value_t = 8)]
    pub per_device_train_batch_size: usize,
    /// Warmup as a fraction of the total steps (rounded up).
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f64,
}

impl CliStage for StageData<QlPair, QlTrainConfig> {
    fn core<'a, B: AutodiffBackend>(&'a self, tok: &'a TextTokenizer) -> impl TrainStage<B> + 'a {
        QlStage::new(tok, &self.items, &self.cfg)
    }
}

/// Stage 1's training pairs from Tevatron files: one (passage, query) per judged positive.
pub fn read_pairs(files: &[std::path::PathBuf]) -> Result<Vec<QlPair>> {
    let mut pairs = Vec::new();
    for ex in &super::training_args::read_train_data(files)? {
        for p in &ex.positive_passages {
            let title = (!p.title.is_empty()).then_some(p.title.as_str());
            pairs.push(QlPair { passage: passage_text(title, &p.text), query: ex.query.clone() });
        }
    }
    if pairs.is_empty() {
        bail!("no (query, positive passage) pairs in --train-data");
    }
    tracing::info!("{} training pairs", pairs.len());
    Ok(pairs)
}

pub fn run(a: QlTrainArgs) -> Result<()> {
    let peers = a.common.training.peers()?;
    let q2d_ratio = match a.rand_num {
        Some(r) if r <= 0.0 => 0.5,
        Some(r) if r <= 0.5 => 0.0,
        Some(_) => 1.0,
        None => a.q2d_ratio,
    };
    let stage = StageDefaults {
        learning_rate: a.learning_rate,
        num_train_epochs: a.num_train_epochs,
        per_device_train_batch_size: a.per_device_train_batch_size,
        warmup: Warmup::Ratio(a.warmup_ratio),
        // Stage 1's product is a causal LM (QL needs lm_head): its adapter loads on AutoModelForCausalLM.
        adapter_layout: llmql_core::lora::AdapterLayout::CausalLm,
    };
    let loss_on: LossOn = a.loss_on.parse().map_err(anyhow::Error::msg)?;
    let sources = input_settings::trained_with(&a.common.model.model, None)?;
    let ql = input_settings::resolve_ql("ql-train", &a.lengths, &sources)?;
    let cfg = QlTrainConfig {
        q2d_ratio,
        mask_probability: a.mask_probability,
        p_max_len: ql.p_max_len,
        q_max_len: ql.q_max_len,
        truncation: ql.truncation,
        loss_on,
        attention_stop: !a.no_attention_stop,
        train: a.common.settings(stage)?,
    };
    super::training_args::validate(&cfg.train, cfg.validate())?;
    let pairs = read_pairs(&a.common.training.train_data)?;
    let output = StageOutput { causal_lm: true, record: TrainedWith::new("ql-train", None, Some(ql.record())) };
    super::training_args::run_stage(&StageData { items: pairs, cfg }, &output, &a.common, &peers)
}
