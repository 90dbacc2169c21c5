//! Stage-1 training: query-likelihood modeling with Attention Stop and Input Corruption
//! (METHOD.md "Stage 1"). Full fine-tuning with AdamW, linear warmup/decay, gradient accumulation
//! (normalised by the labelled tokens of the whole accumulated batch, so accumulation gives the
//! big batch's gradients), global-norm clipping, atomic checkpoints and exact resume: the data
//! order, the corruption and the direction of every example are functions of (seed, epoch,
//! index), and the optimizer state is saved, so a run killed and resumed ends with the same
//! weights as an uninterrupted one.
use super::checkpoint::{save_checkpoint, Fingerprint, LogEntry, TrainerState};
use super::common::{ensure_finite, epoch_order, mix, start_run, step_counts, LogWindow};
use super::clip::clip_global_norm;
use super::layer_checkpoint::LayerCheckpointing;
use super::data_parallel::{all_gather_counts, all_reduce_values, broadcast_trainable, share, sync_gradients, Collective, Single};
use super::schedule::LinearSchedule;
use crate::error::{Error, Result};
use crate::model::DecoderModel;
use crate::ql::corruption::{corrupt_words, example_rng};
use crate::ql::example::{build_example, Direction, LossOn, QlExample, QlLengths};
use crate::truncation::{Truncation, TruncationStats};
use crate::ql::loss::{target_log_probs, QlBatch};
use crate::tokenizer::TextTokenizer;
use crate::weights::StoredDtype;
use burn::optim::{GradientsAccumulator, Optimizer};
use burn::tensor::{backend::AutodiffBackend, ElementConversion};
use rand::Rng;
use std::path::Path;

/// One (passage, query) training pair (`{title} {text}` already joined).
#[derive(Debug, Clone)]
pub struct QlPair {
    pub passage: String,
    pub query: String,
}

#[derive(Debug, Clone)]
pub struct QlTrainConfig {
    /// Fraction of q2d examples (0 = only d2q, the seed's setting).
    pub q2d_ratio: f64,
    pub mask_probability: f64,
    pub p_max_len: usize,
    pub q_max_len: usize,
    /// How a prompt longer than `p_max_len` is cut ([`QlLengths::truncation`]).
    pub truncation: Truncation,
    pub loss_on: LossOn,
    /// `false` trains with plain causal attention (ablation).
    pub attention_stop: bool,
    pub learning_rate: f64,
    pub num_train_epochs: usize,
    /// Stop after this many optimizer steps (schedule still spans them).
    pub max_steps: Option<usize>,
    pub per_device_train_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub warmup_ratio: f64,
    pub max_grad_norm: Option<f64>,
    pub weight_decay: f64,
    pub seed: u64,
    pub logging_steps: usize,
    pub save_steps: usize,
    pub save_total_limit: Option<usize>,
    /// Dtype of saved weights (the compute dtype keeps resume exact).
    pub save_dtype: StoredDtype,
    /// Set when the model carries LoRA adapters (attached by the caller with
    /// [`crate::lora::attach_lora`]): checkpoints then also hold the PEFT adapter, and `resume`
    /// restores the adapter onto the frozen base.
    pub lora: Option<crate::lora::LoraConfig>,
    /// Gradient checkpointing per decoder layer ([`super::layer_checkpoint`]).
    pub gradient_checkpointing: bool,
}

impl Default for QlTrainConfig {
    fn default() -> Self {
        Self {
            q2d_ratio: 0.0,
            mask_probability: 0.6,
            p_max_len: 200,
            q_max_len: 200,
            truncation: Truncation::Content,
            loss_on: LossOn::All,
            attention_stop: true,
            learning_rate: 1e-5,
            num_train_epochs: 2,
            max_steps: None,
            per_device_train_batch_size: 8,
            gradient_accumulation_steps: 1,
            warmup_ratio: 0.1,
            max_grad_norm: Some(1.0),
            weight_decay: 0.0,
            seed: 42,
            logging_steps: 10,
            save_steps: 500,
            save_total_limit: None,
            save_dtype: StoredDtype::F32,
            lora: None,
            gradient_checkpointing: false,
        }
    }
}

/// Progress callbacks (the CLI draws a bar and logs).
pub trait TrainObserver {
    fn on_start(&mut self, _total_steps: usize, _start_step: usize) {}
    /// A micro-batch of step `step` (numbered as [`Self::on_step`] numbers it), as this peer is about
    /// to train on it (benchmarks count and record its tokens).
    fn on_batch(&mut self, _step: usize, _batch: BatchInputs<'_>) {}
    /// Step `step` (from 1) is done: its optimizer update applied, before any checkpoint is written.
    fn on_step(&mut self, _step: usize) {}
    fn on_log(&mut self, _entry: &LogEntry) {}
    fn on_save(&mut self, _dir: &Path) {}
}

/// The token ids of one micro-batch (see [`TrainObserver::on_batch`]).
#[derive(Debug, Clone, Copy)]
pub enum BatchInputs<'a> {
    /// Stage 1: the examples (layout, separator, targets).
    Ql(&'a [QlExample]),
    /// Stage 2: the queries, then each query's group of passages.
    Contrastive { queries: &'a [Vec<u32>], passages: &'a [Vec<u32>] },
}

/// An observer that does nothing.
pub struct Quiet;
impl TrainObserver for Quiet {}

/// Builds example `idx` as epoch `epoch` sees it: direction and corruption from its own RNG.
pub fn make_example(tok: &TextTokenizer, pair: &QlPair, cfg: &QlTrainConfig, epoch: usize, idx: usize) -> Result<QlExample> {
    let mut rng = example_rng(cfg.seed, epoch as u64, idx as u64);
    let q2d = cfg.q2d_ratio > 0.0 && rng.random::<f64>() < cfg.q2d_ratio;
    let lengths = QlLengths { p_max_len: cfg.p_max_len, q_max_len: cfg.q_max_len, truncation: cfg.truncation };
    if q2d {
        build_example(tok, Direction::Q2d, &pair.query, &pair.passage, &lengths)
    } else {
        let passage = corrupt_words(&pair.passage, cfg.mask_probability, &mut rng);
        build_example(tok, Direction::D2q, &passage, &pair.query, &lengths)
    }
}

/// Trains `model` in place of its source model `source` (its tokenizer files are written into
/// each checkpoint), writing checkpoints and the final model into `out`. With `resume`, starts
/// from the newest checkpoint in `out` (its weights replace `model`'s).
#[allow(clippy::too_many_arguments)]
pub fn ql_train<B: AutodiffBackend>(
    model: DecoderModel<B>,
    tok: &TextTokenizer,
    pairs: &[QlPair],
    cfg: &QlTrainConfig,
    source: &crate::checkpoint::SourceFiles,
    out: &Path,
    resume: bool,
    observer: &mut dyn TrainObserver,
) -> Result<DecoderModel<B>> {
    ql_train_parallel(model, tok, pairs, cfg, source, out, resume, observer, &Single)
}

/// [`ql_train`] as one peer of a data-parallel group (every peer calls it with its own copy of the
/// model on its own device). Global batch = per-device batch x peers x accumulation; each peer
/// takes a contiguous share of the step's examples, its loss is its summed target log-likelihood
/// over the whole step's target count (an all-reduced count), and the summed gradients equal the
/// single-device gradient of the step. Only rank 0 logs and saves.
#[allow(clippy::too_many_arguments)]
pub fn ql_train_parallel<B: AutodiffBackend, C: Collective>(
    model: DecoderModel<B>,
    tok: &TextTokenizer,
    pairs: &[QlPair],
    cfg: &QlTrainConfig,
    source: &crate::checkpoint::SourceFiles,
    out: &Path,
    resume: bool,
    observer: &mut dyn TrainObserver,
    c: &C,
) -> Result<DecoderModel<B>> {
    let (world, rank) = (c.world_size(), c.rank());
    if pairs.is_empty() {
        return Err(Error::Other("no training examples".into()));
    }
    let device = model.device();
    let bs = cfg.per_device_train_batch_size.max(1);
    let accum = cfg.gradient_accumulation_steps.max(1);
    let (steps_per_epoch, total_steps) = step_counts(pairs.len(), bs * world, accum, cfg.num_train_epochs, cfg.max_steps);
    let schedule = LinearSchedule {
        base_lr: cfg.learning_rate,
        warmup_steps: LinearSchedule::warmup_from_ratio(cfg.warmup_ratio, total_steps),
        total_steps,
    };
    let mut fp = Fingerprint::default();
    for p in pairs {
        fp.add(&p.passage).add(&p.query);
    }
    let mut state = TrainerState::new(total_steps, cfg.seed, pairs.len(), bs, accum).with_run(world, cfg.learning_rate, schedule.warmup_steps, fp.hex());
    let (model, mut optim) = start_run(model, out, resume, rank, cfg.lora.as_ref(), cfg.weight_decay, &mut state)?;
    let mut model = broadcast_trainable(c, model);
    observer.on_start(total_steps, state.global_step);
    let mut window = LogWindow::default();
    let (prompts_cut, targets_cut) = (TruncationStats::default(), TruncationStats::default());
    while state.global_step < total_steps {
        let step = state.global_step;
        let epoch = step / steps_per_epoch;
        let step_in_epoch = step % steps_per_epoch;
        let order = epoch_order(cfg.seed, epoch, pairs.len());
        let first = step_in_epoch * accum * bs * world;
        let last = ((step_in_epoch + 1) * accum * bs * world).min(pairs.len());
        // This peer's share of the step (possibly empty at the end of an epoch).
        let mine = share(c, last - first);
        let examples = order[first + mine.start..first + mine.end]
            .iter()
            .map(|&i| make_example(tok, &pairs[i], cfg, epoch, i))
            .collect::<Result<Vec<_>>>()?;
        for e in &examples {
            prompts_cut.record(e.sep_pos + e.prompt_cut, e.prompt_cut);
            targets_cut.record(e.len() - e.sep_pos - 1 + e.target_cut, e.target_cut);
        }
        // Dropout and any other backend randomness: a function of (seed, step).
        B::seed(&device, mix(cfg.seed, step as u64));
        let batches: Vec<QlBatch<B>> = examples
            .chunks(bs)
            .map(|c| QlBatch::new(c, cfg.loss_on, tok.eos_id, cfg.attention_stop, &device))
            .collect();
        for chunk in examples.chunks(bs) {
            observer.on_batch(step + 1, BatchInputs::Ql(chunk));
        }
        let local_targets: usize = batches.iter().map(|b| b.num_targets()).sum();
        let total_targets: usize = if world == 1 {
            local_targets
        } else {
            all_gather_counts::<B, C>(c, local_targets, &device).iter().sum()
        };
        let mut acc = GradientsAccumulator::<DecoderModel<B>>::new();
        let mut loss_sum = 0f64;
        let mut tokens = 0usize;
        for (k, batch) in batches.iter().enumerate() {
            let ck = LayerCheckpointing::<B>::start(cfg.gradient_checkpointing, mix(mix(cfg.seed, step as u64), k as u64));
            let loss = target_log_probs(&model, batch).sum().neg() / (total_targets.max(1) as f64);
            loss_sum += loss.clone().into_scalar().elem::<f64>();
            tokens += batch.real_tokens;
            let grads = ck.backward(loss, &model);
            acc.accumulate(&model, grads);
        }
        let mut grads = acc.grads();
        if world > 1 {
            grads = sync_gradients(c, &model, grads);
            let v = all_reduce_values::<B::InnerBackend, C>(c, vec![loss_sum as f32, tokens as f32], &device);
            (loss_sum, tokens) = (v[0] as f64, v[1] as usize);
        }
        ensure_finite(loss_sum, step, out, state.run_id.as_deref())?;
        let grad_norm = clip_global_norm(&model, &mut grads, cfg.max_grad_norm);
        let lr = schedule.lr_at(step);
        model = optim.step(lr, model, grads);
        state.global_step += 1;
        state.epoch = state.global_step as f64 / steps_per_epoch as f64;
        if rank != 0 {
            continue;
        }
        observer.on_step(state.global_step);
        window.add(loss_sum, tokens);
        if state.global_step % cfg.logging_steps.max(1) == 0 || state.global_step == total_steps {
            let entry = window.flush(&state, lr, grad_norm);
            observer.on_log(&entry);
            state.log_history.push(entry);
        }
        let save_now = cfg.save_steps > 0 && state.global_step % cfg.save_steps == 0;
        if save_now || state.global_step == total_steps {
            let dir = save_checkpoint(out, &model, &optim, &state, source, cfg.save_dtype, cfg.lora.as_ref(), cfg.save_total_limit)?;
            observer.on_save(&dir);
        }
    }
    if rank == 0 {
        prompts_cut.log(&format!("stage-1 prompts (max {} tokens, {} truncation)", cfg.p_max_len, cfg.truncation.name()));
        targets_cut.log(&format!("stage-1 targets (max {} tokens)", cfg.q_max_len));
    }
    Ok(model)
}
