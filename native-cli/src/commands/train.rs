//! `llmql train`: LLM-QL stage 2 — contrastive training (Tevatron recipe) of a backbone as a
//! dense retriever, with LoRA by default in the seed's recipe (`--lora`).
use anyhow::{bail, Context, Result};
use clap::Args;
use llmql_backends::AutodiffTask;
use llmql_core::formats::{read_tevatron, TevatronExample};
use llmql_core::lora::LoraConfig;
use llmql_core::pooling::Pooling;
use llmql_core::train::contrastive::{contrastive_train_parallel, ContrastiveConfig};
use llmql_core::train::data_parallel::Collective;
use llmql_core::{Checkpoint, Template};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[arg(long, alias = "model-name-or-path")]
    pub model: PathBuf,
    /// Tevatron jsonl: {"query_id", "query", "positive_passages": [...], "negative_passages": [...]}.
    #[arg(long, alias = "dataset-path")]
    pub train_data: PathBuf,
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Train LoRA adapters on a frozen base (the seed's recipe); without it, all weights.
    #[arg(long)]
    pub lora: bool,
    #[arg(long, default_value_t = 32)]
    pub lora_r: usize,
    #[arg(long, default_value_t = 64.0)]
    pub lora_alpha: f64,
    #[arg(long, default_value_t = 0.1)]
    pub lora_dropout: f64,
    #[arg(long, default_value = "q_proj,k_proj,v_proj,o_proj,down_proj,up_proj,gate_proj")]
    pub lora_target_modules: String,
    #[command(flatten)]
    pub adapter_layout: super::adapter_layout::AdapterLayoutArgs,
    /// eos (LLM-QL / RepLLaMA) or mean.
    #[arg(long, default_value = "eos")]
    pub pooling: String,
    /// L2-normalise embeddings (the seed passes --normalize; on by default, --no-normalize to disable).
    #[arg(long)]
    pub normalize: bool,
    #[arg(long)]
    pub no_normalize: bool,
    #[arg(long, default_value_t = 0.01)]
    pub temperature: f64,
    #[arg(long, default_value_t = 4)]
    pub per_device_train_batch_size: usize,
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
    #[arg(long, default_value_t = 1e-4)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 1)]
    pub num_train_epochs: usize,
    #[arg(long)]
    pub max_steps: Option<usize>,
    #[arg(long, default_value_t = 100)]
    pub warmup_steps: usize,
    #[arg(long, default_value_t = 1)]
    pub gradient_accumulation_steps: usize,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Gradient checkpointing per decoder layer (as transformers' gradient_checkpointing): keep
    /// only each layer's input, recompute one layer at a time in the backward pass.
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// Burn's own op-level recomputation (autodiff BalancedCheckpointing: keeps matmul outputs,
    /// recomputes cheap element-wise ops) instead of, or on top of, --gradient-checkpointing.
    #[arg(long)]
    pub op_checkpointing: bool,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Same as --dtype bf16.
    #[arg(long)]
    pub bf16: bool,
    #[arg(long, default_value_t = 500)]
    pub save_steps: usize,
    #[arg(long)]
    pub save_total_limit: Option<usize>,
    #[arg(long, default_value_t = 10)]
    pub logging_steps: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// llmql | repllama | raw
    #[arg(long, default_value = "llmql")]
    pub template: String,
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Data parallel over several devices, e.g. `cuda:0,cuda:1` (one peer each; global batch =
    /// per-device batch x devices x accumulation; cross-device negatives). Overrides --device.
    #[arg(long)]
    pub devices: Option<String>,
    #[command(flatten)]
    pub multi_node: super::MultiNodeArgs,
    /// Accepted for compatibility with the seed's command line (EOS is always appended).
    #[arg(long)]
    pub append_eos_token: bool,
    /// Accepted for compatibility (output folders are reused; checkpoints are replaced atomically).
    #[arg(long)]
    pub overwrite_output_dir: bool,
}

struct Task<'a, C: Collective> {
    a: &'a TrainArgs,
    ckpt: &'a Checkpoint,
    examples: &'a [TevatronExample],
    cfg: &'a ContrastiveConfig,
    collective: C,
}

impl<C: Collective> AutodiffTask for Task<'_, C> {
    type Output = Result<()>;
    fn run<B: burn::tensor::backend::AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let rank = self.collective.rank();
        let dtype = super::parse_dtype(&self.a.dtype)?;
        // lm_head is not used by the retriever; keep it in full fine-tuning so exports stay complete.
        let mut model = self.ckpt.load_model::<B>(super::training_load(dtype, self.cfg.lora.is_some(), self.cfg.lora.is_none()), &device)?;
        if let Some(lc) = &self.cfg.lora {
            model = llmql_core::lora::attach_lora(model, lc, self.cfg.seed)?;
        }
        // Test hook: one peer fails while the others go on to their first all-reduce.
        if std::env::var("LLMQL_TEST_FAIL_RANK").ok().and_then(|v| v.parse::<usize>().ok()) == Some(rank) {
            anyhow::bail!("peer {rank} failed on purpose (LLMQL_TEST_FAIL_RANK)");
        }
        if rank != 0 {
            // Peers train in lockstep; rank 0 reports and saves.
            let mut quiet = llmql_core::train::ql_train::Quiet;
            contrastive_train_parallel(model, &self.ckpt.tokenizer, self.examples, self.cfg, &self.ckpt.source_files(), &self.a.output_dir, self.a.resume, &mut quiet, &self.collective)?;
            return Ok(());
        }
        let mut obs = crate::progress::TrainProgress::new("train");
        let model = contrastive_train_parallel(model, &self.ckpt.tokenizer, self.examples, self.cfg, &self.ckpt.source_files(), &self.a.output_dir, self.a.resume, &mut obs, &self.collective)?;
        obs.pb.finish_and_clear();
        match &self.cfg.lora {
            // A LoRA run's result is the PEFT adapter (merge it with `llmql merge-lora`).
            Some(lc) => llmql_core::lora::save_adapter(&model, lc, &self.ckpt.source_files().name, &self.a.output_dir)?,
            None => crate::output::save_final_model(&model, &self.ckpt.source_files(), &self.a.output_dir, self.cfg.save_dtype)?,
        }
        tracing::info!("wrote {}", self.a.output_dir.display());
        Ok(())
    }
}

pub fn run(a: TrainArgs) -> Result<()> {
    let mut a = a;
    let multi_node = a.multi_node.resolve()?;
    if a.bf16 {
        a.dtype = "bf16".into();
    }
    a.adapter_layout.check(a.lora)?;
    let devices = super::device_list(&a.device, a.devices.as_deref())?;
    if a.train_group_size == 0 || a.temperature <= 0.0 || !a.learning_rate.is_finite() {
        bail!("--train-group-size must be >= 1, --temperature > 0 and --learning-rate finite");
    }
    let examples = read_tevatron(&a.train_data)?;
    if examples.is_empty() {
        bail!("{}: no training examples", a.train_data.display());
    }
    let ckpt = Checkpoint::open(&a.model).context("loading the base model")?;
    let cfg = ContrastiveConfig {
        template: a.template.parse::<Template>().map_err(anyhow::Error::msg)?,
        pooling: a.pooling.parse::<Pooling>().map_err(anyhow::Error::msg)?,
        normalize: !a.no_normalize,
        temperature: a.temperature,
        train_group_size: a.train_group_size,
        query_max_len: a.query_max_len,
        passage_max_len: a.passage_max_len,
        truncation: a.truncation.truncation,
        learning_rate: a.learning_rate,
        num_train_epochs: a.num_train_epochs,
        max_steps: a.max_steps,
        per_device_train_batch_size: a.per_device_train_batch_size,
        gradient_accumulation_steps: a.gradient_accumulation_steps,
        warmup_steps: a.warmup_steps,
        max_grad_norm: (a.max_grad_norm > 0.0).then_some(a.max_grad_norm),
        weight_decay: a.weight_decay,
        seed: a.seed,
        logging_steps: a.logging_steps,
        save_steps: a.save_steps,
        save_total_limit: a.save_total_limit,
        save_dtype: super::ql_train::stored_dtype(&a.dtype)?,
        gradient_checkpointing: a.gradient_checkpointing,
        lora: a.lora.then(|| LoraConfig {
            r: a.lora_r,
            lora_alpha: a.lora_alpha,
            lora_dropout: a.lora_dropout,
            target_modules: a.lora_target_modules.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            layout: a.adapter_layout.layout(llmql_core::lora::AdapterLayout::AutoModel),
            ..Default::default()
        }),
    };
    let checkpointing = a.op_checkpointing;
    super::run_peers(&devices, multi_node.as_ref(), checkpointing, |collective| Task { a: &a, ckpt: &ckpt, examples: &examples, cfg: &cfg, collective })
}
