//! `llmql ql-train`: LLM-QL stage 1 (query-likelihood modeling with Attention Stop and Input
//! Corruption) on Tevatron jsonl (`query` and `positive_passages` are used).
use anyhow::{bail, Context, Result};
use clap::Args;
use llmql_backends::AutodiffTask;
use llmql_core::formats::read_tevatron;
use llmql_core::ql::example::passage_text;
use llmql_core::ql::LossOn;
use llmql_core::train::data_parallel::Collective;
use llmql_core::train::ql_train::ql_train_parallel;
use llmql_core::train::{QlPair, QlTrainConfig};
use llmql_core::weights::StoredDtype;
use llmql_core::Checkpoint;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct QlTrainArgs {
    /// Base model folder (HF layout).
    #[arg(long, alias = "model-name-or-path")]
    pub model: PathBuf,
    /// Tevatron jsonl: {"query", "positive_passages": [{"title", "text"}, ...]}; one example per positive.
    #[arg(long)]
    pub train_data: PathBuf,
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Fraction of q2d examples (0 = only d2q, the seed's setting; 0.5 = fair mix).
    #[arg(long, default_value_t = 0.0)]
    pub q2d_ratio: f64,
    /// The reference's `--rand_num` (overrides --q2d-ratio): <= 0 a fair coin per example,
    /// (0, 0.5] only d2q, > 0.5 only q2d.
    #[arg(long, allow_hyphen_values = true)]
    pub rand_num: Option<f64>,
    /// Same as --dtype bf16 (the seed's `--bf16 True`).
    #[arg(long)]
    pub bf16: bool,
    /// Input Corruption: probability of replacing each passage word by "_".
    #[arg(long, default_value_t = 0.6)]
    pub mask_probability: f64,
    #[arg(long, default_value_t = 200)]
    pub p_max_len: usize,
    #[arg(long, default_value_t = 200)]
    pub q_max_len: usize,
    #[command(flatten)]
    pub truncation: super::TruncationArgs,
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
    /// Stop after N optimizer steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    #[arg(long, default_value_t = 8)]
    pub per_device_train_batch_size: usize,
    #[arg(long, default_value_t = 1)]
    pub gradient_accumulation_steps: usize,
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f64,
    /// Global gradient-norm clipping (0 disables).
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
    /// Compute dtype: f32 | f16 | bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 10)]
    pub logging_steps: usize,
    #[arg(long, default_value_t = 500)]
    pub save_steps: usize,
    #[arg(long)]
    pub save_total_limit: Option<usize>,
    /// Continue from the newest checkpoint in --output-dir (weights, optimizer, step, data order).
    #[arg(long)]
    pub resume: bool,
    /// flex | cpu | wgpu | wgpu:N | cuda | cuda:N
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Data parallel over several devices, e.g. `cuda:0,cuda:1` (one peer each; global batch =
    /// per-device batch x devices x accumulation). Overrides --device.
    #[arg(long)]
    pub devices: Option<String>,
    #[command(flatten)]
    pub multi_node: super::MultiNodeArgs,
    /// Train LoRA adapters (factored, base frozen) instead of all weights.
    #[arg(long)]
    pub lora: bool,
    #[arg(long, default_value_t = 32)]
    pub lora_r: usize,
    #[arg(long, default_value_t = 64.0)]
    pub lora_alpha: f64,
    #[arg(long, default_value_t = 0.1)]
    pub lora_dropout: f64,
    #[arg(long, default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")]
    pub lora_target_modules: String,
    #[command(flatten)]
    pub adapter_layout: super::adapter_layout::AdapterLayoutArgs,
}

struct Task<'a, C: Collective> {
    a: &'a QlTrainArgs,
    ckpt: &'a Checkpoint,
    pairs: &'a [QlPair],
    cfg: &'a QlTrainConfig,
    collective: C,
}

impl<C: Collective> AutodiffTask for Task<'_, C> {
    type Output = Result<()>;
    fn run<B: burn::tensor::backend::AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let dtype = super::parse_dtype(&self.a.dtype)?;
        let mut model = self.ckpt.load_model::<B>(super::training_load(dtype, self.cfg.lora.is_some(), true), &device)?;
        if let Some(lc) = &self.cfg.lora {
            model = llmql_core::lora::attach_lora(model, lc, self.cfg.seed)?;
        }
        if self.collective.rank() != 0 {
            // Peers train in lockstep; rank 0 reports and saves.
            let mut quiet = llmql_core::train::ql_train::Quiet;
            let src = self.ckpt.source_files();
            ql_train_parallel(model, &self.ckpt.tokenizer, self.pairs, self.cfg, &src, &self.a.output_dir, self.a.resume, &mut quiet, &self.collective)?;
            return Ok(());
        }
        let mut obs = crate::progress::TrainProgress::new("ql-train");
        let model = ql_train_parallel(
            model,
            &self.ckpt.tokenizer,
            self.pairs,
            self.cfg,
            &self.ckpt.source_files(),
            &self.a.output_dir,
            self.a.resume,
            &mut obs,
            &self.collective,
        )?;
        obs.pb.finish_and_clear();
        crate::output::save_final_model(&model, &self.ckpt.source_files(), &self.a.output_dir, self.cfg.save_dtype)?;
        if let Some(lc) = &self.cfg.lora {
            // The PEFT adapter beside the merged weights.
            llmql_core::lora::save_adapter(&model, lc, &self.ckpt.source_files().name, &self.a.output_dir)?;
        }
        tracing::info!("final model written to {}", self.a.output_dir.display());
        Ok(())
    }
}

pub fn stored_dtype(s: &str) -> Result<StoredDtype> {
    Ok(match s {
        "f32" => StoredDtype::F32,
        "f16" => StoredDtype::F16,
        "bf16" => StoredDtype::BF16,
        o => bail!("invalid dtype {o:?}"),
    })
}

pub fn run(a: QlTrainArgs) -> Result<()> {
    let mut a = a;
    let multi_node = a.multi_node.resolve()?;
    if let Some(r) = a.rand_num {
        a.q2d_ratio = if r <= 0.0 { 0.5 } else if r <= 0.5 { 0.0 } else { 1.0 };
    }
    if a.bf16 {
        a.dtype = "bf16".into();
    }
    a.adapter_layout.check(a.lora)?;
    let devices = super::device_list(&a.device, a.devices.as_deref())?;
    let loss_on: LossOn = a.loss_on.parse().map_err(anyhow::Error::msg)?;
    if !a.learning_rate.is_finite() || a.learning_rate < 0.0 {
        bail!("--learning-rate must be a finite non-negative number");
    }
    if !(0.0..=1.0).contains(&a.q2d_ratio) || !(0.0..=1.0).contains(&a.mask_probability) {
        bail!("--q2d-ratio and --mask-probability must be in [0, 1]");
    }
    let examples = read_tevatron(&a.train_data)?;
    let mut pairs = Vec::new();
    for ex in &examples {
        for p in &ex.positive_passages {
            let title = (!p.title.is_empty()).then_some(p.title.as_str());
            pairs.push(QlPair { passage: passage_text(title, &p.text), query: ex.query.clone() });
        }
    }
    if pairs.is_empty() {
        bail!("{}: no (query, positive passage) pairs", a.train_data.display());
    }
    let ckpt = Checkpoint::open(&a.model).with_context(|| "loading the base model")?;
    let cfg = QlTrainConfig {
        q2d_ratio: a.q2d_ratio,
        mask_probability: a.mask_probability,
        p_max_len: a.p_max_len,
        q_max_len: a.q_max_len,
        truncation: a.truncation.truncation,
        loss_on,
        attention_stop: !a.no_attention_stop,
        learning_rate: a.learning_rate,
        num_train_epochs: a.num_train_epochs,
        max_steps: a.max_steps,
        per_device_train_batch_size: a.per_device_train_batch_size,
        gradient_accumulation_steps: a.gradient_accumulation_steps,
        warmup_ratio: a.warmup_ratio,
        max_grad_norm: (a.max_grad_norm > 0.0).then_some(a.max_grad_norm),
        weight_decay: a.weight_decay,
        seed: a.seed,
        logging_steps: a.logging_steps,
        save_steps: a.save_steps,
        save_total_limit: a.save_total_limit,
        save_dtype: stored_dtype(&a.dtype)?,
        gradient_checkpointing: a.gradient_checkpointing,
        lora: a.lora.then(|| llmql_core::lora::LoraConfig {
            r: a.lora_r,
            lora_alpha: a.lora_alpha,
            lora_dropout: a.lora_dropout,
            target_modules: a.lora_target_modules.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            layout: a.adapter_layout.layout(llmql_core::lora::AdapterLayout::CausalLm),
            ..Default::default()
        }),
    };
    if a.lora && (a.lora_r == 0 || !(0.0..1.0).contains(&a.lora_dropout)) {
        bail!("--lora-r must be >= 1 and --lora-dropout in [0, 1)");
    }
    tracing::info!("{} training pairs from {}", pairs.len(), a.train_data.display());
    let checkpointing = a.op_checkpointing;
    super::run_peers(&devices, multi_node.as_ref(), checkpointing, |collective| Task { a: &a, ckpt: &ckpt, pairs: &pairs, cfg: &cfg, collective })
}
