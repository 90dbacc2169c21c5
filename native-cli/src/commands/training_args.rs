//! The flags `ql-train` and `train` share, defined once (clap `flatten`): the model and how it is
//! loaded ([`ModelArgs`]), the run (data, output, optimisation, saving, devices: [`TrainingArgs`]),
//! LoRA ([`LoraArgs`]); and the part of both commands that is the same apart from the stage
//! ([`run_stage`]: load on each device, attach LoRA, train, write the result). Each command keeps
//! only its stage's flags and the four whose defaults differ between the stages (learning rate,
//! epochs, per-device batch size, warmup).
use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::DType;
use clap::Args;
use llmql_backends::AutodiffTask;
use llmql_core::lora::{AdapterLayout, LoraConfig};
use llmql_core::model::DecoderModel;
use llmql_core::tokenizer::TextTokenizer;
use llmql_core::train::data_parallel::Collective;
use llmql_core::train::{train, InvalidSetting, TrainRun, TrainSettings, TrainStage};
use llmql_core::trained_with::TrainedWith;
use llmql_core::weights::StoredDtype;
use llmql_core::ModelSource;
use std::path::PathBuf;

/// The model to train and the dtype it computes in.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The model to start from: an HF folder, a GGUF file or a hub id (as `llmql encode --model`).
    #[arg(long, alias = "model-name-or-path")]
    pub model: PathBuf,
    /// Compute dtype: f32 | f16 | bf16 (half precision keeps f32 master weights in full
    /// fine-tuning; LoRA keeps the frozen base in it).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Same as --dtype bf16 (the reference implementation's `--bf16 True`).
    #[arg(long)]
    pub bf16: bool,
}

impl ModelArgs {
    /// The compute dtype (`--bf16` wins over `--dtype`).
    pub fn dtype(&self) -> Result<DType> {
        if self.bf16 {
            return Ok(DType::BF16);
        }
        super::parse_dtype(&self.dtype)
    }
}

/// The dtype checkpoints and the final model are saved in: the compute dtype.
pub fn stored_dtype(d: DType) -> StoredDtype {
    match d {
        DType::F16 => StoredDtype::F16,
        DType::BF16 => StoredDtype::BF16,
        _ => StoredDtype::F32,
    }
}

/// Data, output, optimisation, saving and devices: the flags of both training commands whose
/// defaults agree.
#[derive(Args, Debug, Clone)]
pub struct TrainingArgs {
    /// Tevatron jsonl: {"query_id", "query", "positive_passages": [{"docid", "title", "text"}, ...],
    /// "negative_passages": [...]} (stage 1 uses the query and its positives, one example each).
    /// Several files, comma-separated, are read as one data set (e.g. judged and generated queries).
    #[arg(long, alias = "dataset-path", value_delimiter = ',', required = true)]
    pub train_data: Vec<PathBuf>,
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Stop after N optimizer steps (overrides --num-train-epochs; the data is cycled).
    #[arg(long)]
    pub max_steps: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub gradient_accumulation_steps: usize,
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
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 10)]
    pub logging_steps: usize,
    #[arg(long, default_value_t = 500)]
    pub save_steps: usize,
    #[arg(long)]
    pub save_total_limit: Option<usize>,
    /// Continue from the newest checkpoint of this run in --output-dir (weights, optimizer, step,
    /// data order).
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
}

/// Every flag `ql-train` and `train` share: the model, the run, LoRA.
#[derive(Args, Debug, Clone)]
pub struct StageArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub training: TrainingArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
}

impl StageArgs {
    /// The shared training settings from these flags and the stage's defaults.
    pub fn settings(&self, stage: StageDefaults) -> Result<TrainSettings> {
        Ok(self.training.settings(stage, &self.lora, self.model.dtype()?))
    }
}

/// LoRA adapters instead of full fine-tuning.
#[derive(Args, Debug, Clone)]
pub struct LoraArgs {
    /// Train LoRA adapters (factored, on a frozen base) instead of all weights.
    #[arg(long)]
    pub lora: bool,
    #[arg(long, default_value_t = 32)]
    pub lora_r: usize,
    #[arg(long, default_value_t = 64.0)]
    pub lora_alpha: f64,
    #[arg(long, default_value_t = 0.1)]
    pub lora_dropout: f64,
    /// Comma-separated linears to adapt (the reference implementation's list and order).
    #[arg(long, default_value = "q_proj,k_proj,v_proj,o_proj,down_proj,up_proj,gate_proj")]
    pub lora_target_modules: String,
    /// Tensor names of the written PEFT adapter, i.e. the Python class it loads on: `auto-model`
    /// (PEFT on AutoModel, task FEATURE_EXTRACTION: what Tevatron and the reference's stage 2 write)
    /// or `causal-lm` (AutoModelForCausalLM, task CAUSAL_LM). Default: auto-model for `train`,
    /// causal-lm for `ql-train` (its product is a causal LM). Reading takes both, whatever this says.
    #[arg(long, value_enum, requires = "lora")]
    pub adapter_layout: Option<LayoutArg>,
}

/// `--adapter-layout` values (see [`AdapterLayout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    /// `base_model.model.layers.N...` (Tevatron, RepLLaMA, the reference's stage 2).
    #[value(alias = "tevatron")]
    AutoModel,
    /// `base_model.model.model.layers.N...`.
    CausalLm,
}

impl LoraArgs {
    /// The adapters' settings, `None` without `--lora`; the adapter is written in `--adapter-layout`,
    /// else the stage's `default_layout`.
    pub fn config(&self, default_layout: AdapterLayout) -> Option<LoraConfig> {
        self.lora.then(|| LoraConfig {
            r: self.lora_r,
            lora_alpha: self.lora_alpha,
            lora_dropout: self.lora_dropout,
            target_modules: self
                .lora_target_modules
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            layout: match self.adapter_layout {
                None => default_layout,
                Some(LayoutArg::AutoModel) => AdapterLayout::AutoModel,
                Some(LayoutArg::CausalLm) => AdapterLayout::CausalLm,
            },
            ..LoraConfig::default()
        })
    }
}

/// The four shared settings whose flags have per-stage defaults (each command defines them), and
/// the layout of the adapter a `--lora` run writes.
pub struct StageDefaults {
    pub learning_rate: f64,
    pub num_train_epochs: usize,
    pub per_device_train_batch_size: usize,
    pub warmup: llmql_core::train::Warmup,
    pub adapter_layout: AdapterLayout,
}

/// The training examples of every `--train-data` file, in the order given.
pub fn read_train_data(files: &[PathBuf]) -> Result<Vec<llmql_core::formats::TevatronExample>> {
    let mut examples = Vec::new();
    for f in files {
        let part = llmql_core::formats::read_tevatron(f)?;
        if part.is_empty() {
            bail!("{}: no training examples", f.display());
        }
        if files.len() > 1 {
            tracing::info!("{} training examples from {}", part.len(), f.display());
        }
        examples.extend(part);
    }
    Ok(examples)
}

impl TrainingArgs {
    /// The shared training settings from these flags, `stage`'s, `--lora` and the compute dtype.
    pub fn settings(&self, stage: StageDefaults, lora: &LoraArgs, dtype: DType) -> TrainSettings {
        TrainSettings {
            learning_rate: stage.learning_rate,
            num_train_epochs: stage.num_train_epochs,
            max_steps: self.max_steps,
            per_device_train_batch_size: stage.per_device_train_batch_size,
            gradient_accumulation_steps: self.gradient_accumulation_steps,
            warmup: stage.warmup,
            max_grad_norm: (self.max_grad_norm != 0.0).then_some(self.max_grad_norm),
            weight_decay: self.weight_decay,
            seed: self.seed,
            logging_steps: self.logging_steps,
            save_steps: self.save_steps,
            save_total_limit: self.save_total_limit,
            save_dtype: stored_dtype(dtype),
            lora: lora.config(stage.adapter_layout),
            grad_checkpoint: self.gradient_checkpointing,
        }
    }
}

/// Checks the shared settings and the stage's (one `validate()` each, where the types live); the
/// error names the flag.
pub fn validate(settings: &TrainSettings, stage: Result<(), InvalidSetting>) -> Result<()> {
    let flag = |e: InvalidSetting| match e.field {
        "lora" => anyhow::anyhow!("--lora-r / --lora-alpha / --lora-dropout / --lora-target-modules: {}", e.message),
        f => anyhow::anyhow!("--{}: {}", f.replace('_', "-"), e.message),
    };
    settings.validate().map_err(flag)?;
    stage.map_err(flag)
}

/// What differs between `ql-train` and `train` once the flags are read: the stage as core's shared
/// loop runs it (`llmql_core::train::train`).
pub trait CliStage: Sync {
    fn core<'a, B: AutodiffBackend>(&'a self, tok: &'a TextTokenizer) -> impl TrainStage<B> + 'a;
}

/// A stage's training data and settings, as the shared command code runs them.
pub struct StageData<T, Cfg> {
    pub items: Vec<T>,
    pub cfg: Cfg,
}

/// How a stage's result is written.
pub struct StageOutput {
    /// Stage 1's product is a causal LM: a LoRA run keeps `lm_head` and writes the merged model
    /// beside its adapter. Stage 2's LoRA product is the PEFT adapter alone (`llmql merge-lora`
    /// merges it); full fine-tuning of either writes the model.
    pub causal_lm: bool,
    /// The settings the result records (`llmql.json`; its command labels the progress bar).
    pub record: TrainedWith,
}

impl StageOutput {
    /// Writes the trained model (rank 0) into `out`, then its record.
    fn save<B: AutodiffBackend>(
        &self,
        model: &DecoderModel<B>,
        ckpt: &ModelSource,
        settings: &TrainSettings,
        out: &std::path::Path,
    ) -> Result<()> {
        let src = ckpt.source_files();
        match &settings.lora {
            Some(lc) if !self.causal_lm => llmql_core::lora::save_adapter(model, lc, &src.name, out)?,
            lora => {
                crate::output::save_final_model(model, &src, out, settings.save_dtype)?;
                if let Some(lc) = lora {
                    llmql_core::lora::save_adapter(model, lc, &src.name, out)?;
                }
            }
        }
        self.record.write(out)?;
        Ok(())
    }
}

struct Task<'a, S: CliStage, C: Collective> {
    stage: &'a S,
    output: &'a StageOutput,
    a: &'a TrainingArgs,
    ckpt: &'a ModelSource,
    dtype: DType,
    collective: C,
}

impl<S: CliStage, C: Collective> AutodiffTask for Task<'_, S, C> {
    type Output = Result<()>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let rank = self.collective.rank();
        let mut stage = self.stage.core::<B>(&self.ckpt.tokenizer);
        let settings = stage.settings().clone();
        let lora = settings.lora.as_ref();
        let lm_head = self.output.causal_lm || lora.is_none();
        let load = super::training_load(self.dtype, lora.is_some(), lm_head);
        let mut model = self.ckpt.load_model::<B>(load, &device)?;
        if let Some(lc) = lora {
            model = llmql_core::lora::attach_lora(model, lc, settings.seed)?;
        }
        // Test hook: one peer fails while the others go on to their first all-reduce.
        if std::env::var("LLMQL_TEST_FAIL_RANK").ok().and_then(|v| v.parse::<usize>().ok()) == Some(rank) {
            bail!("peer {rank} failed on purpose (LLMQL_TEST_FAIL_RANK)");
        }
        let source = self.ckpt.source_files();
        let run = TrainRun { source: &source, out: &self.a.output_dir, resume: self.a.resume };
        if rank != 0 {
            // Peers train in lockstep; rank 0 reports and saves.
            train(model, &mut stage, &run, &mut llmql_core::train::Quiet, &self.collective)?;
            return Ok(());
        }
        let mut obs = crate::progress::TrainProgress::new(&self.output.record.command);
        let model = train(model, &mut stage, &run, &mut obs, &self.collective)?;
        obs.pb.finish_and_clear();
        self.output.save(&model, self.ckpt, &settings, &self.a.output_dir)?;
        tracing::info!("wrote {}", self.a.output_dir.display());
        Ok(())
    }
}

/// The devices of a run (`--device` / `--devices`) and, for a multi-node run, this node's place.
pub struct Peers {
    pub devices: Vec<llmql_backends::DeviceSpec>,
    pub multi_node: Option<llmql_core::train::data_parallel::MultiNode>,
}

impl TrainingArgs {
    /// Reads the device and multi-node flags (before any data is read, so a typo fails fast).
    pub fn peers(&self) -> Result<Peers> {
        let multi_node = self.multi_node.resolve()?;
        Ok(Peers { devices: super::device_list(&self.device, self.devices.as_deref())?, multi_node })
    }
}

/// Opens the model and runs `stage` (its settings already validated) on one device or
/// data-parallel on several, then writes `output`.
pub fn run_stage<S: CliStage>(stage: &S, output: &StageOutput, args: &StageArgs, peers: &Peers) -> Result<()> {
    let (m, a) = (&args.model, &args.training);
    let dtype = m.dtype()?;
    let ckpt = ModelSource::open(&m.model).context("loading the base model")?;
    super::run_peers(&peers.devices, peers.multi_node.as_ref(), a.op_checkpointing, |collective| Task {
        stage,
        output,
        a,
        ckpt: &ckpt,
        dtype,
        collective,
    })
}
