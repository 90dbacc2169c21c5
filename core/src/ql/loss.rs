//! The stage-1 objective: next-token cross-entropy over labelled positions, under the Attention
//! Stop mask, for right-padded batches of unequal examples. Only the hidden states of predicting
//! positions go through `lm_head`, so padding costs no vocabulary-sized logits.
use super::attention_stop::attention_stop_mask;
use super::example::{LossOn, QlExample};
use crate::model::{AttentionMask, DecoderModel, LayerRunner, PlainLayers};
use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};

pub struct QlBatch<B: Backend> {
    pub input_ids: Tensor<B, 2, Int>,
    pub positions: Tensor<B, 2, Int>,
    pub mask: AttentionMask<B>,
    /// Flattened `b * seq + (t - 1)`: the row whose output predicts target `t`.
    pub pred_rows: Tensor<B, 1, Int>,
    /// The target token of each prediction.
    pub targets: Tensor<B, 1, Int>,
    /// Which example each prediction belongs to.
    pub owners: Vec<usize>,
    /// Real (non-padding) tokens in the batch.
    pub real_tokens: usize,
}

impl<B: Backend> QlBatch<B> {
    /// `attention_stop = false` gives plain causal attention (the ablation without AS).
    pub fn new(examples: &[QlExample], on: LossOn, pad_id: u32, attention_stop: bool, device: &B::Device) -> Self {
        let b = examples.len();
        let s = examples.iter().map(QlExample::len).max().unwrap_or(1).max(1);
        let mut ids = vec![pad_id as i64; b * s];
        let mut pos = vec![0i64; b * s];
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        let mut owners = Vec::new();
        for (i, ex) in examples.iter().enumerate() {
            for j in 0..s {
                pos[i * s + j] = j as i64;
            }
            for (j, &t) in ex.input_ids.iter().enumerate() {
                ids[i * s + j] = t as i64;
            }
            for t in ex.target_positions(on) {
                rows.push((i * s + t - 1) as i64);
                targets.push(ex.input_ids[t] as i64);
                owners.push(i);
            }
        }
        let seps: Vec<Option<usize>> = examples.iter().map(|e| attention_stop.then_some(e.sep_pos)).collect();
        let lengths: Vec<usize> = examples.iter().map(QlExample::len).collect();
        let n = rows.len();
        Self {
            input_ids: Tensor::from_data(TensorData::new(ids, [b, s]), device),
            positions: Tensor::from_data(TensorData::new(pos, [b, s]), device),
            mask: AttentionMask::Explicit(attention_stop_mask(&seps, &lengths, s, device)),
            pred_rows: Tensor::from_data(TensorData::new(rows, [n]), device),
            targets: Tensor::from_data(TensorData::new(targets, [n]), device),
            owners,
            real_tokens: lengths.iter().sum(),
        }
    }

    pub fn num_targets(&self) -> usize {
        self.owners.len()
    }
}

/// Natural-log probability of every target token: `[n_targets]` (f32).
pub fn target_log_probs<B: Backend>(model: &DecoderModel<B>, batch: &QlBatch<B>) -> Tensor<B, 1> {
    target_log_probs_run(model, batch, &PlainLayers)
}

/// [`target_log_probs`] with the decoder layers run by `layers` (a training step's gradient
/// checkpointing; see [`LayerRunner`]).
pub fn target_log_probs_run<B: Backend>(
    model: &DecoderModel<B>,
    batch: &QlBatch<B>,
    layers: &dyn LayerRunner<B>,
) -> Tensor<B, 1> {
    let hidden = model.forward_run(batch.input_ids.clone(), batch.positions.clone(), &batch.mask, layers);
    let [b, s, h] = hidden.dims();
    let rows = hidden.reshape([b * s, h]).select(0, batch.pred_rows.clone());
    let logits = model.logits(rows);
    let logits = if logits.dtype() == DType::F32 { logits } else { logits.cast(DType::F32) };
    crate::model::cpu_kernels::target_log_probs(logits, batch.targets.clone())
}

/// Mean negative log-likelihood over the batch's targets (a one-element tensor).
pub fn ql_loss<B: Backend>(model: &DecoderModel<B>, batch: &QlBatch<B>) -> Tensor<B, 1> {
    target_log_probs(model, batch).mean().neg()
}

/// Sum of log-probabilities per example (host side).
pub fn per_example_sums(log_probs: &[f32], owners: &[usize], n_examples: usize) -> Vec<f64> {
    let mut sums = vec![0f64; n_examples];
    for (&lp, &o) in log_probs.iter().zip(owners) {
        sums[o] += lp as f64;
    }
    sums
}
