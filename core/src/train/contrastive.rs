//! Stage 2 (METHOD.md): contrastive training of the (QL-trained) backbone as a retriever —
//! eos pooling, L2 normalisation, InfoNCE with temperature over in-batch and hard negatives,
//! usually with LoRA. Same schedule, clipping, checkpoint and exact-resume machinery as stage 1.
//!
//! Gradient accumulation follows Tevatron: each micro-batch's loss uses the passages of that
//! micro-batch only (its queries' groups are the candidates), and the step's gradient is the mean
//! of the micro-batch gradients — exactly the gradient of the mean of the per-micro-batch losses.
use super::checkpoint::{save_checkpoint, Fingerprint, TrainerState};
use super::layer_checkpoint::LayerCheckpointing;
use super::data_parallel::{broadcast_trainable, infonce_data_parallel, share, sync_gradients, Collective, Single};
use super::common::{ensure_finite, epoch_order, mix, start_run, step_counts, LogWindow};
use super::clip::clip_global_norm;
use super::collapse::{mean_pairwise_cosine, CollapseMonitor};
use super::negatives::sample_group;
use super::ql_train::TrainObserver;
use super::schedule::LinearSchedule;
use crate::encoder::embed;
use crate::error::{Error, Result};
use crate::formats::TevatronExample;
use crate::infonce::infonce_loss;
use crate::model::DecoderModel;
use crate::pooling::Pooling;
use crate::template::{Kind, Template};
use crate::truncation::{Truncation, TruncationStats};
use crate::tokenizer::TextTokenizer;
use crate::weights::StoredDtype;
use burn::optim::{GradientsAccumulator, Optimizer};
use burn::tensor::{backend::AutodiffBackend, ElementConversion};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct ContrastiveConfig {
    pub template: Template,
    pub pooling: Pooling,
    pub normalize: bool,
    pub temperature: f64,
    pub train_group_size: usize,
    pub query_max_len: usize,
    pub passage_max_len: usize,
    /// How inputs longer than their limit are cut ([`Truncation`]).
    pub truncation: Truncation,
    pub learning_rate: f64,
    pub num_train_epochs: usize,
    pub max_steps: Option<usize>,
    pub per_device_train_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub warmup_steps: usize,
    pub max_grad_norm: Option<f64>,
    pub weight_decay: f64,
    pub seed: u64,
    pub logging_steps: usize,
    pub save_steps: usize,
    pub save_total_limit: Option<usize>,
    pub save_dtype: StoredDtype,
    pub lora: Option<crate::lora::LoraConfig>,
    /// Gradient checkpointing per decoder layer ([`super::layer_checkpoint`]).
    pub gradient_checkpointing: bool,
}

impl Default for ContrastiveConfig {
    fn default() -> Self {
        Self {
            template: Template::Llmql,
            pooling: Pooling::Eos,
            normalize: true,
            temperature: 0.01,
            train_group_size: 16,
            query_max_len: crate::template::DEFAULT_QUERY_MAX_LEN,
            passage_max_len: crate::template::DEFAULT_PASSAGE_MAX_LEN,
            truncation: Truncation::Content,
            learning_rate: 1e-4,
            num_train_epochs: 1,
            max_steps: None,
            per_device_train_batch_size: 4,
            gradient_accumulation_steps: 1,
            warmup_steps: 100,
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

/// Token ids of a micro-batch: queries, then each query's group (positive first); what was cut
/// is counted in `cut` (queries, passages).
pub fn group_ids(
    tok: &TextTokenizer,
    examples: &[(usize, &TevatronExample)],
    cfg: &ContrastiveConfig,
    epoch: usize,
    cut: &[TruncationStats; 2],
) -> Result<(Vec<Vec<u32>>, Vec<Vec<u32>>)> {
    let input = |kind: Kind, title: Option<&str>, text: &str, max_len: usize| -> Result<Vec<u32>> {
        let t = tok.encode_input(&cfg.template.parts(kind, title, text), max_len, cfg.truncation)?;
        cut[kind as usize].record(t.full_len(), t.cut_tokens);
        Ok(t.ids)
    };
    let mut qs = Vec::new();
    let mut ps = Vec::new();
    for &(item, ex) in examples {
        if ex.positive_passages.is_empty() {
            return Err(Error::Other(format!("training example {item} (query {:?}) has no positive passage", ex.query)));
        }
        qs.push(input(Kind::Query, None, &ex.query, cfg.query_max_len)?);
        let (pos, negs) = sample_group(item, epoch, cfg.seed, ex.positive_passages.len(), ex.negative_passages.len(), cfg.train_group_size);
        let mut group = vec![&ex.positive_passages[pos]];
        group.extend(negs.iter().map(|&i| &ex.negative_passages[i]));
        // Too few negatives and none at all: repeat the positive's group slot with other positives.
        while group.len() < cfg.train_group_size {
            group.push(&ex.positive_passages[group.len() % ex.positive_passages.len()]);
        }
        for p in group {
            ps.push(input(Kind::Passage, Some(&p.title), &p.text, cfg.passage_max_len)?);
        }
    }
    Ok((qs, ps))
}

#[allow(clippy::too_many_arguments)]
pub fn contrastive_train<B: AutodiffBackend>(
    model: DecoderModel<B>,
    tok: &TextTokenizer,
    examples: &[TevatronExample],
    cfg: &ContrastiveConfig,
    source: &crate::checkpoint::SourceFiles,
    out: &Path,
    resume: bool,
    observer: &mut dyn TrainObserver,
) -> Result<DecoderModel<B>> {
    contrastive_train_parallel(model, tok, examples, cfg, source, out, resume, observer, &Single)
}

/// [`contrastive_train`] as one peer of a data-parallel group (`c`; every peer calls it with its own
/// copy of the model on its own device). The global batch is `per_device_train_batch_size` x peers
/// x accumulation, as Tevatron counts it; each global micro-batch is split over the peers, whose
/// passages are negatives for every query (see [`super::data_parallel`]), and the summed gradient
/// is the one device would compute for the whole micro-batch, so every peer applies the same
/// update. A short final micro-batch is filled up by wrapping around the epoch's order (as
/// PyTorch's DistributedSampler pads). Only rank 0 logs and saves.
#[allow(clippy::too_many_arguments)]
pub fn contrastive_train_parallel<B: AutodiffBackend, C: Collective>(
    model: DecoderModel<B>,
    tok: &TextTokenizer,
    examples: &[TevatronExample],
    cfg: &ContrastiveConfig,
    source: &crate::checkpoint::SourceFiles,
    out: &Path,
    resume: bool,
    observer: &mut dyn TrainObserver,
    c: &C,
) -> Result<DecoderModel<B>> {
    let (world, rank) = (c.world_size(), c.rank());
    if examples.is_empty() {
        return Err(Error::Other("no training examples".into()));
    }
    let device = model.device();
    let bs = cfg.per_device_train_batch_size.max(1);
    let accum = cfg.gradient_accumulation_steps.max(1);
    let (steps_per_epoch, total_steps) = step_counts(examples.len(), bs * world, accum, cfg.num_train_epochs, cfg.max_steps);
    let schedule = LinearSchedule { base_lr: cfg.learning_rate, warmup_steps: cfg.warmup_steps, total_steps };
    let mut fp = Fingerprint::default();
    for ex in examples {
        fp.add(ex.query_id.as_deref().unwrap_or("")).add(&ex.query);
        for p in ex.positive_passages.iter().chain(&ex.negative_passages) {
            fp.add(&p.docid).add(&p.title).add(&p.text);
        }
        fp.add(&ex.positive_passages.len().to_string());
    }
    let mut state = TrainerState::new(total_steps, cfg.seed, examples.len(), bs, accum).with_run(world, cfg.learning_rate, schedule.warmup_steps, fp.hex());
    let (model, mut optim) = start_run(model, out, resume, rank, cfg.lora.as_ref(), cfg.weight_decay, &mut state)?;
    let mut model = broadcast_trainable(c, model);
    observer.on_start(total_steps, state.global_step);
    let mut window = LogWindow::default();
    let cut: [TruncationStats; 2] = Default::default();
    let mut collapse = CollapseMonitor::default();
    while state.global_step < total_steps {
        let step = state.global_step;
        let epoch = step / steps_per_epoch;
        let in_epoch = step % steps_per_epoch;
        let order = epoch_order(cfg.seed, epoch, examples.len());
        let gbs = bs * world;
        let first = in_epoch * accum * gbs;
        let last = ((in_epoch + 1) * accum * gbs).min(examples.len());
        let mut picked: Vec<usize> = order[first..last].to_vec();
        if world > 1 {
            // Every peer needs examples in every micro-batch: fill the last one up from the
            // start of the epoch's order.
            let want = picked.len().div_ceil(gbs) * gbs;
            let mut k = 0;
            while picked.len() < want {
                picked.push(order[k % order.len()]);
                k += 1;
            }
        }
        let chosen: Vec<(usize, &TevatronExample)> = picked.iter().map(|&i| (i, &examples[i])).collect();
        B::seed(&device, mix(cfg.seed, step as u64));
        let micro: Vec<_> = chosen.chunks(gbs).collect();
        let n_micro = micro.len();
        let mut acc = GradientsAccumulator::<DecoderModel<B>>::new();
        let mut loss_sum = 0f64;
        let mut tokens = 0usize;
        let mut cosine = 0f64;
        let mut candidates = 0usize;
        for (k, mb) in micro.into_iter().enumerate() {
            let ck = LayerCheckpointing::<B>::start(cfg.gradient_checkpointing, mix(mix(cfg.seed, step as u64), k as u64));
            // This peer's share of the global micro-batch.
            let (qs, ps) = group_ids(tok, &mb[share(c, mb.len())], cfg, epoch, &cut)?;
            observer.on_batch(step + 1, super::ql_train::BatchInputs::Contrastive { queries: &qs, passages: &ps });
            tokens += qs.iter().chain(ps.iter()).map(Vec::len).sum::<usize>();
            let q = embed(&model, &qs, tok.eos_id, cfg.pooling, cfg.normalize);
            let p = embed(&model, &ps, tok.eos_id, cfg.pooling, cfg.normalize);
            cosine += mean_pairwise_cosine(p.clone().inner()) / n_micro as f64;
            candidates = ps.len() * world;
            let grads = if world == 1 {
                let loss = infonce_loss(q, p, cfg.train_group_size, cfg.temperature) / n_micro as f64;
                loss_sum += loss.clone().into_scalar().elem::<f64>();
                ck.backward(loss, &model)
            } else {
                let (loss, surrogate) = infonce_data_parallel(c, q, p, cfg.train_group_size, cfg.temperature);
                loss_sum += loss / n_micro as f64;
                let surrogate = surrogate / n_micro as f64;
                sync_gradients(c, &model, ck.backward(surrogate, &model))
            };
            acc.accumulate(&model, grads);
        }
        ensure_finite(loss_sum, step, out, state.run_id.as_deref())?;
        let mut grads = acc.grads();
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
        collapse.add(loss_sum, candidates, cosine);
        if state.global_step % cfg.logging_steps.max(1) == 0 || state.global_step == total_steps {
            let mut entry = window.flush(&state, lr, grad_norm);
            entry.embedding_cosine = collapse.flush(state.global_step);
            observer.on_log(&entry);
            state.log_history.push(entry);
        }
        if (cfg.save_steps > 0 && state.global_step % cfg.save_steps == 0) || state.global_step == total_steps {
            let dir = save_checkpoint(out, &model, &optim, &state, source, cfg.save_dtype, cfg.lora.as_ref(), cfg.save_total_limit)?;
            observer.on_save(&dir);
        }
    }
    if rank == 0 {
        let mode = cfg.truncation.name();
        cut[0].log(&format!("training queries (max {} tokens, {mode} truncation)", cfg.query_max_len));
        cut[1].log(&format!("training passages (max {} tokens, {mode} truncation)", cfg.passage_max_len));
    }
    Ok(model)
}
