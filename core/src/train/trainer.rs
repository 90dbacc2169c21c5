//! The training loop both stages run ([`train`]), written once: setup (optimizer, run id, resume),
//! the linear schedule, the data order and per-step seeding, gradient accumulation, the
//! data-parallel gradient sum, global-norm clipping, the AdamW step, rank-0 logging and atomic
//! checkpoints. A stage ([`TrainStage`]) supplies only what differs: its examples, how a
//! micro-batch is built from them, and its loss and how it is normalised — as Tevatron's trainer
//! overrides only `compute_loss`, or Burn's `TrainStep` holds only the step.
//!
//! Exact resume: the data order, the per-example randomness and the backend RNG of every step are
//! functions of (seed, epoch or step, index), and the optimizer state is saved, so a run killed and
//! resumed ends with the same weights as an uninterrupted one.
//!
//! Data parallelism (peers in lockstep, see [`super::data_parallel`]): the global batch is the
//! per-device batch x peers x accumulation. How a step's examples are split over the peers
//! depends on the loss ([`PeerLoss`]).
use super::checkpoint::{save_checkpoint, Fingerprint, LogEntry, TrainerState};
use super::clip::clip_global_norm;
use super::common::{ensure_finite, epoch_order, mix, start_run, step_counts, LogWindow};
use super::data_parallel::{
    all_gather_counts, all_reduce_values, broadcast_trainable, share, sync_gradients, Collective,
};
use super::grad_checkpoint::GradCheckpoint;
use super::observer::{BatchInputs, TrainObserver};
use super::schedule::LinearSchedule;
use super::settings::{InvalidSetting, TrainSettings};
use crate::error::{Error, Result};
use crate::model::{DecoderModel, LayerRunner};
use crate::model_source::SourceFiles;
use burn::optim::{GradientsAccumulator, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use std::path::Path;

/// How a stage's loss spans the peers of a data-parallel group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerLoss {
    /// Each peer's loss covers its own examples (stage 1's summed target log-likelihoods): each peer
    /// takes a contiguous share of the step's examples in micro-batches of the per-device size; the
    /// gradients and loss values are summed over the peers once per step.
    Local,
    /// The loss of each global micro-batch couples the peers (stage 2's InfoNCE, every peer's
    /// passages negatives for every query): the step is cut into global micro-batches of per-device
    /// size x peers (the last one filled up from the start of the epoch's order, as PyTorch's
    /// DistributedSampler pads), each split over the peers; the stage returns the loss of the whole
    /// micro-batch and this peer's share of its gradient, which is summed over the peers after each
    /// micro-batch.
    Coupled,
}

/// How a stage's step loss is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalise {
    /// By the count of the stage's loss units ([`TrainStage::loss_units`]) in the whole step, all
    /// micro-batches and peers: accumulation and data parallelism give the big batch's per-unit mean
    /// (stage 1: labelled target tokens, as transformers' loss over the accumulated batch).
    PerUnit,
    /// By the number of micro-batches: the step's loss is the mean of the micro-batches' losses
    /// (stage 2, Tevatron's accumulation: each micro-batch's candidates are its own passages).
    PerMicroBatch,
}

/// What a stage's loss of one micro-batch divides by ([`Normalise`]).
#[derive(Debug, Clone, Copy)]
pub struct StepNorm {
    /// Micro-batches of this step (the same on every peer under [`PeerLoss::Coupled`]).
    pub micro_batches: usize,
    /// Loss units of the whole step on all peers ([`Normalise::PerUnit`]; 0 otherwise).
    pub units: usize,
}

/// One micro-batch's loss as a stage returns it.
pub struct StageLoss<B: AutodiffBackend> {
    /// What to back-propagate (already normalised; under [`PeerLoss::Coupled`] with several peers,
    /// a surrogate whose gradient is this peer's share).
    pub backward: Tensor<B, 1>,
    /// Its contribution to the step's logged loss: this peer's share ([`PeerLoss::Local`], summed
    /// over the peers) or the whole micro-batch's ([`PeerLoss::Coupled`]).
    pub value: f64,
}

/// What a training stage supplies to [`train`].
pub trait TrainStage<B: AutodiffBackend> {
    /// One micro-batch as the loss takes it (token ids, tensors).
    type Batch;
    const PEER_LOSS: PeerLoss;
    const NORMALISE: Normalise;
    /// The settings every stage shares (optimisation, schedule, saving, LoRA).
    fn settings(&self) -> &TrainSettings;
    /// Training examples (the data order is a seeded shuffle of `0..num_examples()`).
    fn num_examples(&self) -> usize;
    /// A hash of the training data (a resume with other data is refused).
    fn fingerprint(&self) -> Fingerprint;
    /// Checks the stage's own settings (the shared ones are checked by [`TrainSettings::validate`]).
    fn validate(&self) -> std::result::Result<(), InvalidSetting> {
        Ok(())
    }
    /// The micro-batch of examples `items` as epoch `epoch` sees them.
    fn build(&mut self, epoch: usize, items: &[usize], device: &B::Device) -> Result<Self::Batch>;
    /// The micro-batch's token ids, for [`TrainObserver::on_batch`].
    fn inputs<'a>(&self, batch: &'a Self::Batch) -> BatchInputs<'a>;
    /// Tokens of the micro-batch (the logged tokens/s).
    fn tokens(&self, batch: &Self::Batch) -> usize;
    /// Loss units of the micro-batch ([`Normalise::PerUnit`]).
    fn loss_units(&self, _batch: &Self::Batch) -> usize {
        0
    }
    /// The micro-batch's loss, normalised by `norm`, with the decoder layers run by `layers` (the
    /// step's gradient checkpointing, which every forward pass must be given).
    fn loss<C: Collective>(
        &mut self,
        model: &DecoderModel<B>,
        batch: &Self::Batch,
        layers: &dyn LayerRunner<B>,
        norm: &StepNorm,
        c: &C,
    ) -> StageLoss<B>;
    /// A step is done; `loss` is its logged loss.
    fn end_step(&mut self, _loss: f64) {}
    /// Adds the stage's own signals to a log entry (rank 0).
    fn annotate(&mut self, _entry: &mut LogEntry) {}
    /// The run is done (rank 0): log what the stage counted (e.g. truncated inputs).
    fn finish(&self) {}
}

/// Where a run reads its source and writes its checkpoints.
#[derive(Clone, Copy)]
pub struct TrainRun<'a> {
    /// The model's source files (tokenizer and config are written into each checkpoint).
    pub source: &'a SourceFiles,
    /// Checkpoints (`checkpoint-N`) go here.
    pub out: &'a Path,
    /// Start from the newest checkpoint of this run in `out` (its weights replace the model's).
    pub resume: bool,
}

/// Trains `model` on `stage` (stage 1: [`super::ql_train::QlStage`], stage 2:
/// [`super::contrastive::ContrastiveStage`]) as one peer of `c` (every peer calls it with its own
/// copy of the model on its own device; [`super::data_parallel::Single`] for one device), writing
/// checkpoints into `run.out`; with `run.resume`, from the newest checkpoint there. Only rank 0
/// logs and saves. Returns the trained model.
pub fn train<B, S, C>(
    model: DecoderModel<B>,
    stage: &mut S,
    run: &TrainRun<'_>,
    observer: &mut dyn TrainObserver,
    c: &C,
) -> Result<DecoderModel<B>>
where
    B: AutodiffBackend,
    S: TrainStage<B>,
    C: Collective,
{
    let settings = &stage.settings().clone();
    settings.validate()?;
    stage.validate()?;
    let n = stage.num_examples();
    if n == 0 {
        return Err(Error::Other("no training examples".into()));
    }
    let (world, rank) = (c.world_size(), c.rank());
    let seed = settings.seed;
    let device = model.device();
    let bs = settings.per_device_train_batch_size;
    let accum = settings.gradient_accumulation_steps;
    let gbs = bs * world;
    let (steps_per_epoch, total_steps) = step_counts(n, gbs, accum, settings.num_train_epochs, settings.max_steps);
    let schedule = LinearSchedule {
        base_lr: settings.learning_rate,
        warmup_steps: settings.warmup.steps(total_steps),
        total_steps,
    };
    let mut state = TrainerState::new(total_steps, seed, n, bs, accum).with_run(
        world,
        settings.learning_rate,
        schedule.warmup_steps,
        stage.fingerprint().hex(),
    );
    let (model, mut optim) =
        start_run(model, run.out, run.resume, rank, settings.lora.as_ref(), settings.weight_decay, &mut state)?;
    let mut model = broadcast_trainable(c, model);
    observer.on_start(total_steps, state.global_step);
    let mut window = LogWindow::default();
    while state.global_step < total_steps {
        let step = state.global_step;
        let epoch = step / steps_per_epoch;
        let in_epoch = step % steps_per_epoch;
        let order = epoch_order(seed, epoch, n);
        let first = in_epoch * accum * gbs;
        let last = ((in_epoch + 1) * accum * gbs).min(n);
        let micro = peer_micro_batches::<C>(S::PEER_LOSS, &order, first..last, bs, c);
        // Dropout and any other backend randomness: a function of (seed, step).
        B::seed(&device, mix(seed, step as u64));
        let t_start = std::time::Instant::now();
        let batches = micro.iter().map(|items| stage.build(epoch, items, &device)).collect::<Result<Vec<_>>>()?;
        for b in &batches {
            observer.on_batch(step + 1, stage.inputs(b));
        }
        let units = match S::NORMALISE {
            Normalise::PerMicroBatch => 0,
            Normalise::PerUnit => {
                let local: usize = batches.iter().map(|b| stage.loss_units(b)).sum();
                if world == 1 {
                    local
                } else {
                    all_gather_counts::<B, C>(c, local, &device).iter().sum()
                }
            }
        };
        let norm = StepNorm { micro_batches: batches.len(), units };
        let t_built = std::time::Instant::now();
        let mut acc = GradientsAccumulator::<DecoderModel<B>>::new();
        let mut loss_sum = 0f64;
        let mut tokens = 0usize;
        let mut forward = std::time::Duration::ZERO;
        for (k, batch) in batches.iter().enumerate() {
            let gc = GradCheckpoint::<B>::start(settings.grad_checkpoint, mix(mix(seed, step as u64), k as u64));
            tokens += stage.tokens(batch);
            let t0 = std::time::Instant::now();
            let loss = stage.loss(&model, batch, gc.layers(), &norm, c);
            loss_sum += loss.value;
            forward += t0.elapsed();
            let mut grads = gc.backward(loss.backward, &model);
            if S::PEER_LOSS == PeerLoss::Coupled {
                grads = sync_gradients(c, &model, grads);
            }
            acc.accumulate(&model, grads);
        }
        let mut grads = acc.grads();
        if world > 1 {
            match S::PEER_LOSS {
                PeerLoss::Local => {
                    grads = sync_gradients(c, &model, grads);
                    let v = all_reduce_values::<B::InnerBackend, C>(c, vec![loss_sum as f32, tokens as f32], &device);
                    (loss_sum, tokens) = (v[0] as f64, v[1] as usize);
                }
                PeerLoss::Coupled => {
                    tokens = all_reduce_values::<B::InnerBackend, C>(c, vec![tokens as f32], &device)[0] as usize;
                }
            }
        }
        ensure_finite(loss_sum, step, run.out, state.run_id.as_deref())?;
        let t_grads = std::time::Instant::now();
        let grad_norm = clip_global_norm(&model, &mut grads, settings.max_grad_norm);
        let t_clipped = std::time::Instant::now();
        let lr = schedule.lr_at(step);
        model = optim.step(lr, model, grads);
        // Where a step's time goes (exact on CPU backends; on GPUs work is queued asynchronously).
        tracing::debug!(
            step = step + 1,
            build_ms = (t_built - t_start).as_millis() as u64,
            forward_ms = forward.as_millis() as u64,
            backward_ms = (t_grads - t_built).saturating_sub(forward).as_millis() as u64,
            clip_ms = (t_clipped - t_grads).as_millis() as u64,
            optimizer_ms = t_clipped.elapsed().as_millis() as u64,
            "step phases"
        );
        state.global_step += 1;
        state.epoch = state.global_step as f64 / steps_per_epoch as f64;
        stage.end_step(loss_sum);
        if rank != 0 {
            continue;
        }
        observer.on_step(state.global_step);
        window.add(loss_sum, tokens);
        if state.global_step.is_multiple_of(settings.logging_steps.max(1)) || state.global_step == total_steps {
            let mut entry = window.flush(&state, lr, grad_norm);
            stage.annotate(&mut entry);
            observer.on_log(&entry);
            state.log_history.push(entry);
        }
        let save_now = settings.save_steps > 0 && state.global_step.is_multiple_of(settings.save_steps);
        if save_now || state.global_step == total_steps {
            let dir = save_checkpoint(run.out, &model, &optim, &state, run.source, settings)?;
            observer.on_save(&dir);
        }
    }
    if rank == 0 {
        stage.finish();
    }
    Ok(model)
}

/// This peer's micro-batches (example indices) of the step that takes `order[range]` (see
/// [`PeerLoss`]).
fn peer_micro_batches<C: Collective>(
    how: PeerLoss,
    order: &[usize],
    range: std::ops::Range<usize>,
    bs: usize,
    c: &C,
) -> Vec<Vec<usize>> {
    let world = c.world_size();
    match how {
        PeerLoss::Local => {
            // This peer's share of the step (possibly empty at the end of an epoch).
            let mine = share(c, range.len());
            let start = range.start;
            order[start + mine.start..start + mine.end].chunks(bs).map(<[usize]>::to_vec).collect()
        }
        PeerLoss::Coupled => {
            let gbs = bs * world;
            let mut picked: Vec<usize> = order[range].to_vec();
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
            picked.chunks(gbs).map(|mb| mb[share(c, mb.len())].to_vec()).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Peer(usize, usize);
    impl Collective for Peer {
        fn world_size(&self) -> usize {
            self.1
        }
        fn rank(&self) -> usize {
            self.0
        }
        fn all_reduce_sum<B: burn::tensor::backend::Backend, const D: usize>(&self, t: Tensor<B, D>) -> Tensor<B, D> {
            t
        }
    }

    #[test]
    fn peers_split_steps_by_loss_kind() {
        let order: Vec<usize> = (0..10).collect();
        // One device: both kinds cut the step into micro-batches of the batch size.
        for how in [PeerLoss::Local, PeerLoss::Coupled] {
            assert_eq!(peer_micro_batches(how, &order, 4..9, 2, &Peer(0, 1)), vec![vec![4, 5], vec![6, 7], vec![8]]);
        }
        // Two peers, local loss: a contiguous share each, then micro-batches.
        assert_eq!(peer_micro_batches(PeerLoss::Local, &order, 0..7, 2, &Peer(0, 2)), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(peer_micro_batches(PeerLoss::Local, &order, 0..7, 2, &Peer(1, 2)), vec![vec![4, 5], vec![6]]);
        // Two peers, coupled loss: global micro-batches of 4, the last padded from the order's start.
        assert_eq!(peer_micro_batches(PeerLoss::Coupled, &order, 4..10, 2, &Peer(0, 2)), vec![vec![4, 5], vec![8, 9]]);
        assert_eq!(peer_micro_batches(PeerLoss::Coupled, &order, 4..10, 2, &Peer(1, 2)), vec![vec![6, 7], vec![0, 1]]);
    }
}
