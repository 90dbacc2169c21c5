//! Stage 2: contrastive training of the (QL-trained) backbone as a retriever — eos pooling, L2
//! normalisation, InfoNCE with temperature over in-batch and hard negatives, usually with LoRA —
//! as a [`TrainStage`] of the shared loop ([`super::trainer`]: schedule, clipping, checkpoints,
//! exact resume).
//!
//! Gradient accumulation follows Tevatron: each micro-batch's loss uses the passages of that
//! micro-batch only (its queries' groups are the candidates), and the step's gradient is the mean
//! of the micro-batch gradients — exactly the gradient of the mean of the per-micro-batch losses
//! ([`Normalise::PerMicroBatch`]). With several devices every peer's passages are negatives for
//! every query ([`PeerLoss::Coupled`], [`super::data_parallel::infonce_data_parallel`]).
use super::checkpoint::{Fingerprint, LogEntry};
use super::collapse::{mean_pairwise_cosine, CollapseMonitor};
use super::data_parallel::{infonce_data_parallel, Collective};
use super::negatives::sample_group;
use super::observer::BatchInputs;
use super::settings::{InvalidSetting, TrainSettings};
use super::trainer::{Normalise, PeerLoss, StageLoss, StepNorm, TrainStage};
use crate::encoder::embed_run;
use crate::error::{Error, Result};
use crate::formats::TevatronExample;
use crate::infonce::infonce_loss;
use crate::model::{DecoderModel, LayerRunner};
use crate::pooling::Pooling;
use crate::template::{Kind, Template};
use crate::tokenizer::TextTokenizer;
use crate::truncation::{Truncation, TruncationStats};
use burn::tensor::{backend::AutodiffBackend, ElementConversion};

/// Stage 2's settings: its own, and the ones both stages share (`train`).
#[derive(Debug, Clone)]
pub struct ContrastiveConfig {
    pub template: Template,
    pub pooling: Pooling,
    /// L2-normalise the embeddings (cosine similarity), as the reference implementation does.
    pub normalize: bool,
    pub temperature: f64,
    /// Passages per query: the positive, then hard negatives.
    pub train_group_size: usize,
    pub query_max_len: usize,
    pub passage_max_len: usize,
    /// How inputs longer than their limit are cut ([`Truncation`]).
    pub truncation: Truncation,
    pub train: TrainSettings,
}

impl Default for ContrastiveConfig {
    fn default() -> Self {
        Self {
            template: crate::defaults::TEMPLATE,
            pooling: crate::defaults::POOLING,
            normalize: crate::defaults::NORMALIZE,
            temperature: 0.01,
            train_group_size: 16,
            query_max_len: crate::defaults::QUERY_MAX_LEN,
            passage_max_len: crate::defaults::PASSAGE_MAX_LEN,
            truncation: crate::defaults::TRUNCATION,
            train: TrainSettings::stage2(),
        }
    }
}

impl ContrastiveConfig {
    /// Checks stage 2's own settings (the shared ones: [`TrainSettings::validate`]).
    pub fn validate(&self) -> std::result::Result<(), InvalidSetting> {
        if self.train_group_size == 0 {
            return Err(InvalidSetting::new("train_group_size", "must be at least 1"));
        }
        if !self.temperature.is_finite() || self.temperature <= 0.0 {
            return Err(InvalidSetting::new(
                "temperature",
                format!("{} is not a finite positive number", self.temperature),
            ));
        }
        Ok(())
    }
}

/// Query ids, then the passage ids of every query's group.
pub type GroupIds = (Vec<Vec<u32>>, Vec<Vec<u32>>);

/// Token ids of a micro-batch: queries, then each query's group (positive first); what was cut
/// is counted in `cut` (queries, passages).
pub fn group_ids(
    tok: &TextTokenizer,
    examples: &[(usize, &TevatronExample)],
    cfg: &ContrastiveConfig,
    epoch: usize,
    cut: &[TruncationStats; 2],
) -> Result<GroupIds> {
    let input = |kind: Kind, title: Option<&str>, text: &str, max_len: usize| -> Result<Vec<u32>> {
        let t = tok.encode_input(&cfg.template.parts(kind, title, text), max_len, cfg.truncation)?;
        cut[kind as usize].record(t.full_len(), t.cut_tokens);
        Ok(t.ids)
    };
    let mut qs = Vec::new();
    let mut ps = Vec::new();
    for &(item, ex) in examples {
        if ex.positive_passages.is_empty() {
            return Err(Error::Other(format!(
                "training example {item} (query {:?}) has no positive passage",
                ex.query
            )));
        }
        qs.push(input(Kind::Query, None, &ex.query, cfg.query_max_len)?);
        let (pos, negs) = sample_group(
            item,
            epoch,
            cfg.train.seed,
            ex.positive_passages.len(),
            ex.negative_passages.len(),
            cfg.train_group_size,
        );
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

/// Stage 2 as the shared loop ([`super::trainer::train`]) runs it: a retriever trained on `examples`. As one peer
/// of a data-parallel group the global batch is `per_device_train_batch_size` x peers x
/// accumulation, as Tevatron counts it; each global micro-batch is split over the peers, whose
/// passages are negatives for every query, and the summed gradient is the one device would compute
/// for the whole micro-batch, so every peer applies the same update ([`PeerLoss::Coupled`]).
pub struct ContrastiveStage<'a> {
    tok: &'a TextTokenizer,
    examples: &'a [TevatronExample],
    cfg: &'a ContrastiveConfig,
    /// Cut queries, passages.
    cut: [TruncationStats; 2],
    collapse: CollapseMonitor,
    /// This step so far: mean pairwise passage cosine, candidates per query.
    cosine: f64,
    candidates: usize,
}

/// One micro-batch of stage 2 (this peer's share): query ids, then each query's group.
pub struct GroupBatch {
    queries: Vec<Vec<u32>>,
    passages: Vec<Vec<u32>>,
}

impl<'a> ContrastiveStage<'a> {
    pub fn new(tok: &'a TextTokenizer, examples: &'a [TevatronExample], cfg: &'a ContrastiveConfig) -> Self {
        Self {
            tok,
            examples,
            cfg,
            cut: Default::default(),
            collapse: CollapseMonitor::default(),
            cosine: 0.0,
            candidates: 0,
        }
    }
}

impl<B: AutodiffBackend> TrainStage<B> for ContrastiveStage<'_> {
    type Batch = GroupBatch;
    const PEER_LOSS: PeerLoss = PeerLoss::Coupled;
    const NORMALISE: Normalise = Normalise::PerMicroBatch;
    fn settings(&self) -> &TrainSettings {
        &self.cfg.train
    }

    fn num_examples(&self) -> usize {
        self.examples.len()
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut fp = Fingerprint::default();
        for ex in self.examples {
            fp.add(ex.query_id.as_deref().unwrap_or("")).add(&ex.query);
            for p in ex.positive_passages.iter().chain(&ex.negative_passages) {
                fp.add(&p.docid).add(&p.title).add(&p.text);
            }
            fp.add(&ex.positive_passages.len().to_string());
        }
        fp
    }

    fn validate(&self) -> std::result::Result<(), InvalidSetting> {
        self.cfg.validate()
    }

    fn build(&mut self, epoch: usize, items: &[usize], _device: &B::Device) -> Result<GroupBatch> {
        let chosen: Vec<(usize, &TevatronExample)> = items.iter().map(|&i| (i, &self.examples[i])).collect();
        let (queries, passages) = group_ids(self.tok, &chosen, self.cfg, epoch, &self.cut)?;
        Ok(GroupBatch { queries, passages })
    }

    fn inputs<'b>(&self, b: &'b GroupBatch) -> BatchInputs<'b> {
        BatchInputs::Contrastive { queries: &b.queries, passages: &b.passages }
    }

    fn tokens(&self, b: &GroupBatch) -> usize {
        b.queries.iter().chain(b.passages.iter()).map(Vec::len).sum()
    }

    fn loss<C: Collective>(
        &mut self,
        model: &DecoderModel<B>,
        b: &GroupBatch,
        layers: &dyn LayerRunner<B>,
        norm: &StepNorm,
        c: &C,
    ) -> StageLoss<B> {
        let cfg = self.cfg;
        let eos = self.tok.eos_id;
        let n_micro = norm.micro_batches as f64;
        let q = embed_run(model, layers, &b.queries, eos, cfg.pooling, cfg.normalize);
        let p = embed_run(model, layers, &b.passages, eos, cfg.pooling, cfg.normalize);
        self.cosine += mean_pairwise_cosine(p.clone().inner()) / n_micro;
        self.candidates = b.passages.len() * c.world_size();
        if c.world_size() == 1 {
            let loss = infonce_loss(q, p, cfg.train_group_size, cfg.temperature) / n_micro;
            let value = loss.clone().into_scalar().elem::<f64>();
            StageLoss { backward: loss, value }
        } else {
            let (loss, surrogate) = infonce_data_parallel(c, q, p, cfg.train_group_size, cfg.temperature);
            StageLoss { backward: surrogate / n_micro, value: loss / n_micro }
        }
    }

    fn end_step(&mut self, loss: f64) {
        self.collapse.add(loss, self.candidates, self.cosine);
        self.cosine = 0.0;
    }

    fn annotate(&mut self, entry: &mut LogEntry) {
        entry.embedding_cosine = self.collapse.flush(entry.step);
    }

    fn finish(&self) {
        let cfg = self.cfg;
        let mode = cfg.truncation.name();
        self.cut[0].log(&format!("training queries (max {} tokens, {mode} truncation)", cfg.query_max_len));
        self.cut[1].log(&format!("training passages (max {} tokens, {mode} truncation)", cfg.passage_max_len));
    }
}
