//! QL ranking (the method's "QL ranking"): score(q, d) = sum over the query tokens and the closing EOS
//! of log P(token | document prompt + separator, earlier query tokens), natural log, under the
//! Attention Stop mask, with the uncorrupted llmql d2q prompt.
//!
//! Under Attention Stop the query sees the document only through the separator, so the document
//! is run once (its prompt + separator, causally) and only the separator's keys/values of every
//! layer are kept; each (query, document) pair then runs just its query tokens against that
//! one-position cache. This gives the same scores as the full masked sequence (tested) at a
//! fraction of the cost: a document shared by many queries is read once, and a pair costs only
//! its query's tokens. Without Attention Stop (plain causal QL, as zero-shot LLM rerankers score)
//! the same is done with the whole prompt's keys/values cached, as transformers' `past_key_values`
//! would. Documents are cached a chunk at a time, so memory does not grow with the run.
use super::example::{build_example, Direction, LossOn, QlExample, QlLengths};
use super::loss::{per_example_sums, target_log_probs, QlBatch};
use crate::encoder::{length_sorted_batches, PaddedBatch};
use crate::error::Result;
use crate::model::{AttentionMask, DecoderModel, LayerKv};
use crate::tokenizer::TextTokenizer;
use crate::truncation::{Truncation, TruncationStats};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, DType, Int, Tensor, TensorData};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
pub struct QlScoreOptions {
    pub p_max_len: usize,
    pub q_max_len: usize,
    /// How a document prompt longer than `p_max_len` is cut.
    pub truncation: Truncation,
    pub batch_size: usize,
    /// `false` scores with plain causal attention (for ablations).
    pub attention_stop: bool,
}

impl Default for QlScoreOptions {
    fn default() -> Self {
        Self {
            p_max_len: crate::defaults::QL_PASSAGE_MAX_LEN,
            q_max_len: crate::defaults::QL_QUERY_MAX_LEN,
            truncation: crate::defaults::TRUNCATION,
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
    on_batch: impl FnMut(usize),
) -> Result<Vec<f64>> {
    let lengths = QlLengths { p_max_len: opts.p_max_len, q_max_len: opts.q_max_len, truncation: opts.truncation };
    let examples =
        pairs.iter().map(|(p, q)| build_example(tok, Direction::D2q, p, q, &lengths)).collect::<Result<Vec<_>>>()?;
    let (prompts, queries) = (TruncationStats::default(), TruncationStats::default());
    for e in &examples {
        prompts.record(e.sep_pos + e.prompt_cut, e.prompt_cut);
        queries.record(e.len() - e.sep_pos - 1 + e.target_cut, e.target_cut);
    }
    prompts.log(&format!("document prompts (max {} tokens, {} truncation)", opts.p_max_len, opts.truncation.name()));
    queries.log(&format!("scored queries (max {} tokens)", opts.q_max_len));
    Ok(cached_scores(model, &examples, tok.eos_id, opts.batch_size, opts.attention_stop, on_batch))
}

/// Scores by running every pair's whole sequence (prompt, separator, query) under the mask.
pub fn full_sequence_scores<B: Backend>(
    model: &DecoderModel<B>,
    examples: &[QlExample],
    pad_id: u32,
    batch_size: usize,
    attention_stop: bool,
    mut on_batch: impl FnMut(usize),
) -> Result<Vec<f64>> {
    let lengths: Vec<usize> = examples.iter().map(|e| e.len()).collect();
    let mut out = vec![0f64; examples.len()];
    let device = model.device();
    for idx in length_sorted_batches(&lengths, batch_size) {
        let batch_ex: Vec<_> = idx.iter().map(|&i| examples[i].clone()).collect();
        let batch = QlBatch::<B>::new(&batch_ex, LossOn::Query, pad_id, attention_stop, &device);
        let lp: Vec<f32> = target_log_probs(model, &batch).into_data().convert::<f32>().to_vec().expect("f32");
        for (k, s) in per_example_sums(&lp, &batch.owners, idx.len()).into_iter().enumerate() {
            out[idx[k]] = s;
        }
        on_batch(idx.len());
    }
    Ok(out)
}

pub(crate) fn host_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    let t = if t.dtype() == DType::F32 { t } else { t.cast(DType::F32) };
    t.into_data().convert::<f32>().to_vec().expect("f32")
}

/// Documents whose cache is built and used at once (bounds memory on large reranking runs).
const DOCS_PER_CHUNK: usize = 256;

/// Scores through a per-document KV cache (see the module docs): under Attention Stop only the
/// separator's keys/values are kept; with plain causal attention (`attention_stop = false`) those
/// of the whole prompt. `on_batch` counts pairs as their query batches finish.
pub fn cached_scores<B: Backend>(
    model: &DecoderModel<B>,
    examples: &[QlExample],
    pad_id: u32,
    batch_size: usize,
    attention_stop: bool,
    mut on_batch: impl FnMut(usize),
) -> Vec<f64> {
    // Documents: distinct prompt + separator prefixes.
    let mut doc_of: Vec<usize> = Vec::with_capacity(examples.len());
    let mut docs: Vec<Vec<u32>> = Vec::new();
    let mut seen: HashMap<&[u32], usize> = HashMap::new();
    for e in examples {
        let prefix = &e.input_ids[..=e.sep_pos];
        let d = *seen.entry(prefix).or_insert_with(|| {
            docs.push(prefix.to_vec());
            docs.len() - 1
        });
        doc_of.push(d);
    }
    let mut pairs_of_doc: Vec<Vec<usize>> = vec![Vec::new(); docs.len()];
    for (i, &d) in doc_of.iter().enumerate() {
        pairs_of_doc[d].push(i);
    }
    let mut scores = vec![0f64; examples.len()];
    let started = std::time::Instant::now();
    tracing::info!(
        "QL scoring: reading {} documents once (prompt + separator), then {} queries' tokens against {}",
        docs.len(),
        examples.len(),
        if attention_stop {
            "each document's separator (Attention Stop)"
        } else {
            "each document's whole prompt (causal)"
        }
    );
    // Long documents first, so that each chunk's cache is padded little.
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by(|&a, &b| docs[b].len().cmp(&docs[a].len()).then(a.cmp(&b)));
    for chunk in order.chunks(DOCS_PER_CHUNK) {
        let cache = DocCache::build(
            model,
            &docs,
            chunk,
            pad_id,
            batch_size,
            attention_stop,
            &pairs_of_doc,
            examples,
            &mut scores,
        );
        let pairs: Vec<usize> = chunk.iter().flat_map(|&d| pairs_of_doc[d].iter().copied()).collect();
        score_queries(model, examples, &pairs, &doc_of, &cache, pad_id, batch_size, &mut scores, &mut on_batch);
    }
    tracing::debug!("QL scoring: {} pairs in {:.1}s", examples.len(), started.elapsed().as_secs_f64());
    scores
}

/// The cached keys/values of a chunk of documents: per layer `[docs, width, kv_heads, head_dim]`,
/// right-padded to the chunk's widest prefix.
struct DocCache<B: Backend> {
    layers: Vec<LayerKv<B>>,
    /// Document index -> its row in the cache.
    row: HashMap<usize, usize>,
    /// Cached positions of each row (1 under Attention Stop).
    len: Vec<usize>,
    width: usize,
}

impl<B: Backend> DocCache<B> {
    /// Runs each document of `chunk` once (prompt + separator, causally), keeps its keys/values,
    /// and scores the first target of its pairs (predicted by the separator) into `scores`.
    #[allow(clippy::too_many_arguments)]
    fn build(
        model: &DecoderModel<B>,
        docs: &[Vec<u32>],
        chunk: &[usize],
        pad_id: u32,
        batch_size: usize,
        attention_stop: bool,
        pairs_of_doc: &[Vec<usize>],
        examples: &[QlExample],
        scores: &mut [f64],
    ) -> Self {
        let width = if attention_stop { 1 } else { chunk.iter().map(|&d| docs[d].len()).max().unwrap_or(1) };
        let n_layers = model.layers.len();
        let mut parts: Vec<Vec<LayerKv<B>>> = vec![Vec::new(); n_layers];
        let mut row = HashMap::new();
        let mut len = Vec::new();
        let batches: Vec<&[usize]> = chunk.chunks(batch_size.max(1)).collect();
        let read = |model: &DecoderModel<B>, idx: &&[usize]| -> (Vec<f32>, Vec<LayerKv<B>>) {
            let device = model.device();
            let seqs: Vec<Vec<u32>> = idx.iter().map(|&d| docs[d].clone()).collect();
            let batch = PaddedBatch::<B>::new(&seqs, pad_id, &device);
            let (hidden, kvs) = model.forward_kv(batch.input_ids, batch.positions, &AttentionMask::Causal, None);
            let [b, s, h] = hidden.dims();
            let sep_rows: Vec<i64> = idx.iter().enumerate().map(|(r, &d)| (r * s + docs[d].len() - 1) as i64).collect();
            let sep_index = Tensor::<B, 1, Int>::from_data(TensorData::new(sep_rows, [b]), &device);
            let sep_hidden = hidden.reshape([b * s, h]).select(0, sep_index.clone());
            let logp = host_f32(log_softmax(model.logits(sep_hidden).cast(DType::F32), 1));
            let kept = kvs
                .into_iter()
                .map(|(k, v)| {
                    let [_, _, kvh, hd] = k.dims();
                    let keep = |t: Tensor<B, 4>| -> Tensor<B, 4> {
                        if attention_stop {
                            // [b, s, kvh, hd] -> each row's separator position -> [b, 1, kvh, hd]
                            t.reshape([b * s, kvh * hd]).select(0, sep_index.clone()).reshape([b, 1, kvh, hd])
                        } else if s < width {
                            let pad = Tensor::zeros([b, width - s, kvh, hd], (&device, t.dtype()));
                            Tensor::cat(vec![t, pad], 1)
                        } else {
                            t
                        }
                    };
                    (keep(k), keep(v))
                })
                .collect();
            (logp, kept)
        };
        // Several batches at once on the CPU backend (see `for_each_batch`).
        crate::model::for_each_batch(model, &batches, read, |idx, (logp, kept)| {
            let vocab = logp.len() / idx.len();
            for (r, &d) in idx.iter().enumerate() {
                row.insert(d, len.len());
                len.push(if attention_stop { 1 } else { docs[d].len() });
                for &i in &pairs_of_doc[d] {
                    let e = &examples[i];
                    scores[i] = logp[r * vocab + e.input_ids[e.sep_pos + 1] as usize] as f64;
                }
            }
            for (l, kv) in kept.into_iter().enumerate() {
                parts[l].push(kv);
            }
        });
        let layers = parts
            .into_iter()
            .map(|p| {
                let (ks, vs): (Vec<_>, Vec<_>) = p.into_iter().unzip();
                (Tensor::cat(ks, 0), Tensor::cat(vs, 0))
            })
            .collect();
        Self { layers, row, len, width }
    }
}

/// Pass 2: each pair's query tokens (all but the closing EOS, which is only predicted) against its
/// document's cache; adds their log-probabilities to `scores`.
#[allow(clippy::too_many_arguments)]
fn score_queries<B: Backend>(
    model: &DecoderModel<B>,
    examples: &[QlExample],
    pairs: &[usize],
    doc_of: &[usize],
    cache: &DocCache<B>,
    pad_id: u32,
    batch_size: usize,
    scores: &mut [f64],
    on_batch: &mut impl FnMut(usize),
) {
    let inputs_len = |i: usize| examples[i].len() - examples[i].sep_pos - 2;
    let (short, long): (Vec<usize>, Vec<usize>) = pairs.iter().partition(|&&i| inputs_len(i) == 0);
    on_batch(short.len());
    let lens: Vec<usize> = long.iter().map(|&i| inputs_len(i)).collect();
    // Under Attention Stop a query row is short; with a whole prompt cached, fewer rows fit.
    let rows = if cache.width == 1 { batch_size * 4 } else { batch_size };
    let p = cache.width;
    let read = |model: &DecoderModel<B>, batch_idx: &Vec<usize>| -> (Vec<usize>, Vec<usize>, Vec<f32>) {
        let device = model.device();
        let idx: Vec<usize> = batch_idx.iter().map(|&k| long[k]).collect();
        let b = idx.len();
        let s = idx.iter().map(|&i| inputs_len(i)).max().unwrap();
        let mut ids = vec![pad_id as i64; b * s];
        let mut pos = vec![0i64; b * s];
        let mut masked = vec![false; b * s * (p + s)];
        let mut rows_sel = Vec::new();
        let mut targets = Vec::new();
        let mut owners = Vec::new();
        for (r, &i) in idx.iter().enumerate() {
            let e = &examples[i];
            let t0 = e.sep_pos + 1;
            let cached = cache.len[cache.row[&doc_of[i]]];
            for j in 0..s {
                pos[r * s + j] = (t0 + j) as i64;
                let m = &mut masked[(r * s + j) * (p + s)..(r * s + j + 1) * (p + s)];
                for (c, x) in m.iter_mut().enumerate() {
                    // Cache columns beyond the document's prefix are padding; query columns are causal.
                    *x = if c < p { c >= cached } else { c - p > j };
                }
            }
            for j in 0..inputs_len(i) {
                ids[r * s + j] = e.input_ids[t0 + j] as i64;
                rows_sel.push((r * s + j) as i64);
                targets.push(e.input_ids[t0 + j + 1] as i64);
                owners.push(r);
            }
        }
        let docs_sel = Tensor::<B, 1, Int>::from_data(
            TensorData::new(idx.iter().map(|&i| cache.row[&doc_of[i]] as i64).collect::<Vec<_>>(), [b]),
            &device,
        );
        let prefix = cache
            .layers
            .iter()
            .map(|(k, v)| (k.clone().select(0, docs_sel.clone()), v.clone().select(0, docs_sel.clone())))
            .collect();
        let mask = AttentionMask::Explicit(Tensor::<B, 4, Bool>::from_data(
            TensorData::new(masked, [b, 1, s, p + s]),
            &device,
        ));
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, s]), &device);
        let pos = Tensor::<B, 2, Int>::from_data(TensorData::new(pos, [b, s]), &device);
        let (hidden, _) = model.forward_kv(ids, pos, &mask, Some(prefix));
        let h = hidden.dims()[2];
        let n = rows_sel.len();
        let sel = Tensor::<B, 1, Int>::from_data(TensorData::new(rows_sel, [n]), &device);
        let logits = model.logits(hidden.reshape([b * s, h]).select(0, sel)).cast(DType::F32);
        let tgt = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [n]), &device);
        (idx, owners, host_f32(crate::model::cpu_kernels::target_log_probs(logits, tgt)))
    };
    // Several batches at once on the CPU backend (see `for_each_batch`).
    crate::model::for_each_batch(model, &length_sorted_batches(&lens, rows), read, |_, (idx, owners, lp)| {
        for (k, &r) in owners.iter().enumerate() {
            scores[idx[r]] += lp[k] as f64;
        }
        on_batch(idx.len());
    });
}
