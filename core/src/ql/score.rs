//! QL ranking (METHOD.md "QL ranking"): score(q, d) = sum over the query tokens and the closing EOS
//! of log P(token | document prompt + separator, earlier query tokens), natural log, under the
//! Attention Stop mask, with the uncorrupted llmql d2q prompt.
use super::example::{build_d2q, LossOn};
use super::loss::{per_example_sums, target_log_probs, QlBatch};
use crate::error::Result;
use crate::model::DecoderModel;
use crate::tokenizer::TextTokenizer;
use burn::tensor::backend::Backend;

#[derive(Debug, Clone, Copy)]
pub struct QlScoreOptions {
    pub p_max_len: usize,
    pub q_max_len: usize,
    pub batch_size: usize,
    /// `false` scores with plain causal attention (for ablations).
    pub attention_stop: bool,
}

impl Default for QlScoreOptions {
    fn default() -> Self {
        Self {
            p_max_len: 200,
            q_max_len: 200,
            batch_size: 16,
            attention_stop: true,
        }
    }
}

/// QL scores of `(passage_text, query)` pairs, in input order. Pairs are batched by length.
pub fn ql_scores<B: Backend>(
    model: &DecoderModel<B>,
    tok: &TextTokenizer,
    pairs: &[(String, String)],
    opts: QlScoreOptions,
    mut on_batch: impl FnMut(usize),
) -> Result<Vec<f64>> {
    let examples = pairs
        .iter()
        .map(|(p, q)| build_d2q(tok, p, q, opts.p_max_len, opts.q_max_len))
        .collect::<Result<Vec<_>>>()?;
    let lengths: Vec<usize> = examples.iter().map(|e| e.len()).collect();
    let mut out = vec![0f64; examples.len()];
    let device = model.device();
    for idx in crate::encoder::length_sorted_batches(&lengths, opts.batch_size) {
        let batch_ex: Vec<_> = idx.iter().map(|&i| examples[i].clone()).collect();
        let batch = QlBatch::<B>::new(&batch_ex, LossOn::Query, tok.eos_id, opts.attention_stop, &device);
        let lp: Vec<f32> = target_log_probs(model, &batch)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("f32");
        for (k, s) in per_example_sums(&lp, &batch.owners, idx.len()).into_iter().enumerate() {
            out[idx[k]] = s;
        }
        on_batch(idx.len());
    }
    Ok(out)
}
