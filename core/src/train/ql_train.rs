//! Stage 1: query-likelihood modeling with Attention Stop and Input Corruption (the method's
//! "Stage 1"), as a [`TrainStage`] of the shared loop ([`super::trainer`]: AdamW, linear
//! warmup/decay, accumulation, clipping, atomic checkpoints, exact resume). What this stage adds:
//! its examples are (passage, query) pairs; an example's direction (d2q or q2d) and corruption are
//! functions of (seed, epoch, index); the loss is the summed negative target log-likelihood over the
//! labelled tokens of the whole step ([`Normalise::PerUnit`]), so accumulation and data parallelism
//! give the big batch's gradients, as transformers' loss over an accumulated batch.
use super::checkpoint::Fingerprint;
use super::data_parallel::Collective;
use super::observer::BatchInputs;
use super::settings::{InvalidSetting, TrainSettings};
use super::trainer::{Normalise, PeerLoss, StageLoss, StepNorm, TrainStage};
use crate::error::Result;
use crate::model::{DecoderModel, LayerRunner};
use crate::ql::corruption::{corrupt_words, example_rng};
use crate::ql::example::{build_example, Direction, LossOn, QlExample, QlLengths};
use crate::ql::loss::{target_log_probs_run, QlBatch};
use crate::tokenizer::TextTokenizer;
use crate::truncation::{Truncation, TruncationStats};
use burn::tensor::{backend::AutodiffBackend, ElementConversion};
use rand::Rng;

/// One (passage, query) training pair (`{title} {text}` already joined).
#[derive(Debug, Clone)]
pub struct QlPair {
    pub passage: String,
    pub query: String,
}

/// Stage 1's settings: its own, and the ones both stages share (`train`).
#[derive(Debug, Clone)]
pub struct QlTrainConfig {
    /// Fraction of q2d examples (0 = only d2q, the reference implementation's setting).
    pub q2d_ratio: f64,
    /// Input Corruption: probability of replacing each passage word by "_".
    pub mask_probability: f64,
    pub p_max_len: usize,
    pub q_max_len: usize,
    /// How a prompt longer than `p_max_len` is cut ([`QlLengths::truncation`]).
    pub truncation: Truncation,
    pub loss_on: LossOn,
    /// `false` trains with plain causal attention (ablation).
    pub attention_stop: bool,
    pub train: TrainSettings,
}

impl Default for QlTrainConfig {
    fn default() -> Self {
        Self {
            q2d_ratio: 0.0,
            mask_probability: 0.6,
            p_max_len: crate::defaults::QL_PASSAGE_MAX_LEN,
            q_max_len: crate::defaults::QL_QUERY_MAX_LEN,
            truncation: crate::defaults::TRUNCATION,
            loss_on: LossOn::All,
            attention_stop: true,
            train: TrainSettings::stage1(),
        }
    }
}

impl QlTrainConfig {
    /// Checks stage 1's own settings (the shared ones: [`TrainSettings::validate`]).
    pub fn validate(&self) -> std::result::Result<(), InvalidSetting> {
        if !(0.0..=1.0).contains(&self.q2d_ratio) {
            return Err(InvalidSetting::new("q2d_ratio", format!("{} is not in [0, 1]", self.q2d_ratio)));
        }
        if !(0.0..=1.0).contains(&self.mask_probability) {
            return Err(InvalidSetting::new("mask_probability", format!("{} is not in [0, 1]", self.mask_probability)));
        }
        Ok(())
    }
}

/// Builds example `idx` as epoch `epoch` sees it: direction and corruption from its own RNG.
pub fn make_example(
    tok: &TextTokenizer,
    pair: &QlPair,
    cfg: &QlTrainConfig,
    epoch: usize,
    idx: usize,
) -> Result<QlExample> {
    let mut rng = example_rng(cfg.train.seed, epoch as u64, idx as u64);
    let q2d = cfg.q2d_ratio > 0.0 && rng.random::<f64>() < cfg.q2d_ratio;
    let lengths = QlLengths { p_max_len: cfg.p_max_len, q_max_len: cfg.q_max_len, truncation: cfg.truncation };
    if q2d {
        build_example(tok, Direction::Q2d, &pair.query, &pair.passage, &lengths)
    } else {
        let passage = corrupt_words(&pair.passage, cfg.mask_probability, &mut rng);
        build_example(tok, Direction::D2q, &passage, &pair.query, &lengths)
    }
}

/// Stage 1 as the shared loop ([`super::trainer::train`]) runs it, on `pairs`. As one peer of a data-parallel group
/// each peer takes a contiguous share of the step's examples, its loss is its summed target
/// log-likelihood over the whole step's target count, and the summed gradients equal the
/// single-device gradient of the step ([`PeerLoss::Local`]).
pub struct QlStage<'a> {
    tok: &'a TextTokenizer,
    pairs: &'a [QlPair],
    cfg: &'a QlTrainConfig,
    prompts_cut: TruncationStats,
    targets_cut: TruncationStats,
}

/// One micro-batch of stage 1: the examples and their tensors.
pub struct QlMicroBatch<B: AutodiffBackend> {
    examples: Vec<QlExample>,
    batch: QlBatch<B>,
}

impl<'a> QlStage<'a> {
    pub fn new(tok: &'a TextTokenizer, pairs: &'a [QlPair], cfg: &'a QlTrainConfig) -> Self {
        Self { tok, pairs, cfg, prompts_cut: Default::default(), targets_cut: Default::default() }
    }
}

impl<B: AutodiffBackend> TrainStage<B> for QlStage<'_> {
    type Batch = QlMicroBatch<B>;
    const PEER_LOSS: PeerLoss = PeerLoss::Local;
    const NORMALISE: Normalise = Normalise::PerUnit;

    fn num_examples(&self) -> usize {
        self.pairs.len()
    }

    fn settings(&self) -> &TrainSettings {
        &self.cfg.train
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut fp = Fingerprint::default();
        for p in self.pairs {
            fp.add(&p.passage).add(&p.query);
        }
        fp
    }

    fn validate(&self) -> std::result::Result<(), InvalidSetting> {
        self.cfg.validate()
    }

    fn build(&mut self, epoch: usize, items: &[usize], device: &B::Device) -> Result<QlMicroBatch<B>> {
        let examples = items
            .iter()
            .map(|&i| make_example(self.tok, &self.pairs[i], self.cfg, epoch, i))
            .collect::<Result<Vec<_>>>()?;
        for e in &examples {
            self.prompts_cut.record(e.sep_pos + e.prompt_cut, e.prompt_cut);
            self.targets_cut.record(e.len() - e.sep_pos - 1 + e.target_cut, e.target_cut);
        }
        let batch = QlBatch::new(&examples, self.cfg.loss_on, self.tok.eos_id, self.cfg.attention_stop, device);
        Ok(QlMicroBatch { examples, batch })
    }

    fn inputs<'b>(&self, b: &'b QlMicroBatch<B>) -> BatchInputs<'b> {
        BatchInputs::Ql(&b.examples)
    }

    fn tokens(&self, b: &QlMicroBatch<B>) -> usize {
        b.batch.real_tokens
    }

    fn loss_units(&self, b: &QlMicroBatch<B>) -> usize {
        b.batch.num_targets()
    }

    fn loss<C: Collective>(
        &mut self,
        model: &DecoderModel<B>,
        b: &QlMicroBatch<B>,
        layers: &dyn LayerRunner<B>,
        norm: &StepNorm,
        _c: &C,
    ) -> StageLoss<B> {
        let loss = target_log_probs_run(model, &b.batch, layers).sum().neg() / (norm.units.max(1) as f64);
        let value = loss.clone().into_scalar().elem::<f64>();
        StageLoss { backward: loss, value }
    }

    fn finish(&self) {
        let cfg = self.cfg;
        self.prompts_cut.log(&format!(
            "stage-1 prompts (max {} tokens, {} truncation)",
            cfg.p_max_len,
            cfg.truncation.name()
        ));
        self.targets_cut.log(&format!("stage-1 targets (max {} tokens)", cfg.q_max_len));
    }
}
