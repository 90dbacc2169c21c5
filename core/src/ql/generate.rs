//! Query generation with the stage-1 model: doc2query from the QL model itself.
//!
//! Stage 1 of LLM-QL trains exactly a query generator, P(query | passage), in the d2q layout
//! `[BOS] D2Q_PREFIX + passage + D2Q_SUFFIX [EOS = separator] query [EOS]` (see
//! [`super::example`]). Generating from it is the same layout read the other way: the
//! (uncorrupted) passage prompt and the separator are given, and the query tokens are decoded one
//! at a time until the model writes EOS. That is how llmql writes training queries for a
//! collection that has few (doc2query, InPars, Promptagator and GPL do the same with separate
//! models); `llmql generate-queries` is the command.
//!
//! - **Attention.** Under Attention Stop (`attention_stop = true`, as the model was trained) the
//!   query sees the passage only through the separator's state; with plain causal attention
//!   (`false`) it reads the whole prompt, as any decoder LLM generates zero-shot.
//! - **KV cache.** The prompt is run once (causally); under Attention Stop only the separator's
//!   keys/values are kept (one position per layer), with causal attention those of the whole
//!   prompt (as transformers' `past_key_values`). Each new token then costs one position against
//!   that cache plus the tokens generated so far — no quadratic re-run of the prefix. The cache
//!   has room for every token from the start and each step writes its column in place
//!   ([`crate::model::StepKv`]), so a step never copies the cache. Rows that have finished
//!   leave the batch. `kv_cache = false` re-runs every whole sequence at every step
//!   under the same mask (the reference path the tests compare the cache with).
//! - **Positions** continue after the separator exactly as in training and QL scoring
//!   ([`super::score`]), so a generated query is scored by the model as it was written.
//! - **Sampling.** Greedy (argmax; the first of equal maxima, as `torch.argmax`) or nucleus
//!   sampling (temperature, then the smallest set of most likely tokens whose probability reaches
//!   `top_p`, as transformers' `TopPLogitsWarper`). Every request draws from its own random stream
//!   (`seed` and the request's key), so the output does not depend on batching, threads or on
//!   which requests were generated earlier (a resumed run writes what an uninterrupted one does).
//! - **Repeats.** `no_repeat_ngram > 0` forbids a token that would repeat an n-gram of the tokens
//!   generated so far (transformers' `no_repeat_ngram_size`, but over the query only: copying the
//!   passage's words is what a query does).
//!
//! Backend-generic: the same loop runs on flex, wgpu and CUDA.
use super::example::{build_example, Direction, QlLengths};
use super::score::host_f32;
use crate::encoder::{length_sorted_batches, PaddedBatch};
use crate::error::{Error, Result};
use crate::model::{AttentionMask, DecoderModel, StepKv};
use crate::tokenizer::TextTokenizer;
use crate::truncation::{Truncation, TruncationStats};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use rand::Rng;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token.
    Greedy,
    /// Nucleus sampling: logits divided by `temperature`, then a draw from the smallest set of
    /// most likely tokens whose probability reaches `top_p`.
    TopP { top_p: f32, temperature: f32 },
}

impl Sampling {
    /// Checks the parameters (a clear error instead of a NaN distribution).
    pub fn validate(&self) -> Result<()> {
        if let Sampling::TopP { top_p, temperature } = *self {
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(Error::Other(format!("top-p must be in (0, 1], got {top_p}")));
            }
            if !(temperature > 0.0 && temperature.is_finite()) {
                return Err(Error::Other(format!("the sampling temperature must be above 0, got {temperature}")));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    /// The prompt (BOS, instruction, passage, suffix) has at most this many tokens; the passage is
    /// cut as `truncation` says.
    pub p_max_len: usize,
    pub truncation: Truncation,
    /// At most this many tokens are generated per query, the closing EOS included (as
    /// transformers' `max_new_tokens`).
    pub max_new_tokens: usize,
    /// Requests decoded together.
    pub batch_size: usize,
    /// Attention Stop (the stage-1 layout) or plain causal attention.
    pub attention_stop: bool,
    pub sampling: Sampling,
    pub seed: u64,
    /// See the module docs (`false` only for tests and checks).
    pub kv_cache: bool,
    /// Forbid repeating an n-gram of the query (0: off).
    pub no_repeat_ngram: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            p_max_len: crate::defaults::QL_PASSAGE_MAX_LEN,
            truncation: crate::defaults::TRUNCATION,
            max_new_tokens: 64,
            batch_size: 16,
            attention_stop: true,
            sampling: Sampling::Greedy,
            seed: 42,
            kv_cache: true,
            no_repeat_ngram: 0,
        }
    }
}

/// One generation request: a prompt ([`d2q_prompt`]) and the key of its random stream (e.g. a
/// hash of the passage id and the sample number).
#[derive(Debug, Clone)]
pub struct Request {
    /// `[BOS] prompt [EOS]`: the prompt tokens and the separator.
    pub prompt: Vec<u32>,
    pub key: u64,
}

/// What was generated for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The query tokens, without the closing EOS.
    pub ids: Vec<u32>,
    /// Whether the model closed the query with EOS (else it reached `max_new_tokens`).
    pub finished: bool,
}

/// The d2q prompt of `passage` with its separator (`[BOS] D2Q_PREFIX + passage + D2Q_SUFFIX
/// [EOS]`), cut to `p_max_len` tokens as in training; records the cut in `stats`.
pub fn d2q_prompt(
    tok: &TextTokenizer,
    passage: &str,
    p_max_len: usize,
    truncation: Truncation,
    stats: &TruncationStats,
) -> Result<Vec<u32>> {
    let lengths = QlLengths { p_max_len, q_max_len: 1, truncation };
    let e = build_example(tok, Direction::D2q, passage, "", &lengths)?;
    stats.record(e.sep_pos + e.prompt_cut, e.prompt_cut);
    let mut ids = e.input_ids;
    ids.truncate(e.sep_pos + 1);
    Ok(ids)
}

/// Generates a query for every request, in input order. Requests are batched by prompt length;
/// on the CPU backend several batches run at once ([`crate::model::for_each_batch`]).
/// `on_batch(n)` after each batch of `n` requests.
pub fn generate<B: Backend>(
    model: &DecoderModel<B>,
    eos_id: u32,
    requests: &[Request],
    opts: &GenerateOptions,
    mut on_batch: impl FnMut(usize),
) -> Result<Vec<Generated>> {
    opts.sampling.validate()?;
    if opts.max_new_tokens == 0 {
        return Err(Error::Other("max_new_tokens must be at least 1".into()));
    }
    if let Some(r) = requests.iter().find(|r| r.prompt.last() != Some(&eos_id)) {
        return Err(Error::Other(format!(
            "a generation prompt must end with the separator (EOS id {eos_id}); got {:?}",
            r.prompt.last()
        )));
    }
    let lengths: Vec<usize> = requests.iter().map(|r| r.prompt.len()).collect();
    let batches = length_sorted_batches(&lengths, opts.batch_size);
    let mut out: Vec<Option<Generated>> = vec![None; requests.len()];
    let run = |model: &DecoderModel<B>, idx: &Vec<usize>| -> Vec<Generated> {
        let batch: Vec<&Request> = idx.iter().map(|&i| &requests[i]).collect();
        if opts.kv_cache {
            generate_cached(model, eos_id, &batch, opts)
        } else {
            generate_uncached(model, eos_id, &batch, opts)
        }
    };
    crate::model::for_each_batch(model, &batches, run, |idx, results| {
        for (&i, g) in idx.iter().zip(results) {
            out[i] = Some(g);
        }
        on_batch(idx.len());
    });
    Ok(out.into_iter().map(|g| g.expect("every request generated")).collect())
}

/// The state of one request while it is decoded.
struct Row<'a> {
    request: &'a Request,
    rng: rand_chacha::ChaCha8Rng,
    ids: Vec<u32>,
    finished: bool,
}

impl<'a> Row<'a> {
    fn new(request: &'a Request, seed: u64) -> Self {
        Self {
            request,
            rng: super::corruption::example_rng(seed, request.key, 0x6765_6E65_7261_7465),
            ids: Vec::new(),
            finished: false,
        }
    }

    /// Chooses the next token from `logits` (one row) and appends it; true when the row is done.
    fn push(&mut self, logits: &mut [f32], eos_id: u32, opts: &GenerateOptions) -> bool {
        ban_repeats(logits, &self.ids, opts.no_repeat_ngram);
        let t = match opts.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::TopP { top_p, temperature } => sample_top_p(logits, top_p, temperature, self.rng.random()),
        };
        if t == eos_id {
            self.finished = true;
        } else {
            self.ids.push(t);
        }
        self.finished || self.ids.len() >= opts.max_new_tokens
    }

    fn result(self) -> Generated {
        Generated { ids: self.ids, finished: self.finished }
    }
}

/// The first index of the largest value.
fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Nucleus sampling with the uniform draw `u` in [0, 1).
fn sample_top_p(logits: &[f32], top_p: f32, temperature: f32, u: f64) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let probs: Vec<f64> = logits.iter().map(|&x| (((x - max) / temperature) as f64).exp()).collect();
    let total: f64 = probs.iter().sum();
    // The most likely tokens first; most of the mass sits in a few, so sort a growing head only.
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let by_prob = |a: &u32, b: &u32| probs[*b as usize].total_cmp(&probs[*a as usize]).then(a.cmp(b));
    let mut head = 64.min(order.len());
    let kept = loop {
        if head < order.len() {
            order.select_nth_unstable_by(head - 1, by_prob);
        }
        order[..head].sort_unstable_by(by_prob);
        let mut mass = 0.0;
        let found = order[..head].iter().position(|&t| {
            mass += probs[t as usize] / total;
            mass >= top_p as f64
        });
        match found {
            Some(k) => break k + 1,
            None if head == order.len() => break head,
            None => head = (head * 16).min(order.len()),
        }
    };
    let kept = &order[..kept];
    let mass: f64 = kept.iter().map(|&t| probs[t as usize]).sum();
    let mut target = u * mass;
    for &t in kept {
        target -= probs[t as usize];
        if target < 0.0 {
            return t;
        }
    }
    *kept.last().expect("at least one token")
}

/// Sets to -inf every token that would complete an n-gram already in `ids`.
fn ban_repeats(logits: &mut [f32], ids: &[u32], n: usize) {
    if n == 0 || ids.len() < n {
        return;
    }
    let tail = &ids[ids.len() - (n - 1)..];
    for w in ids.windows(n) {
        if &w[..n - 1] == tail {
            logits[w[n - 1] as usize] = f32::NEG_INFINITY;
        }
    }
}

/// Next-token logits of the given rows of `hidden` (`[b, s, h]` after the final norm), on the host.
fn row_logits<B: Backend>(model: &DecoderModel<B>, hidden: Tensor<B, 3>, rows: &[usize]) -> Vec<Vec<f32>> {
    let [b, s, h] = hidden.dims();
    let device = hidden.device();
    let sel: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    let sel = Tensor::<B, 1, Int>::from_data(TensorData::new(sel, [rows.len()]), &device);
    let logits = host_f32(model.logits(hidden.reshape([b * s, h]).select(0, sel)));
    let vocab = logits.len() / rows.len();
    logits.chunks(vocab).map(<[f32]>::to_vec).collect()
}

/// Prompt, then one position per step against the KV cache (see the module docs).
fn generate_cached<B: Backend>(
    model: &DecoderModel<B>,
    eos_id: u32,
    batch: &[&Request],
    opts: &GenerateOptions,
) -> Vec<Generated> {
    let device = model.device();
    let mut rows: Vec<Row> = batch.iter().map(|r| Row::new(r, opts.seed)).collect();
    // The prompts, causally; their last position (the separator) predicts the first token.
    let seqs: Vec<Vec<u32>> = batch.iter().map(|r| r.prompt.clone()).collect();
    let padded = PaddedBatch::<B>::new(&seqs, eos_id, &device);
    let (hidden, kvs) = model.forward_kv(padded.input_ids, padded.positions, &AttentionMask::Causal, None);
    let s = hidden.dims()[1];
    let last: Vec<usize> = seqs.iter().enumerate().map(|(r, q)| r * s + q.len() - 1).collect();
    let b = batch.len();
    // Cached prompt positions per row: the separator alone, or the whole prompt; then room for
    // every generated token but the last (which is only predicted).
    let cached: Vec<usize> = seqs.iter().map(|q| if opts.attention_stop { 1 } else { q.len() }).collect();
    let width = if opts.attention_stop { 1 } else { s };
    let capacity = width + opts.max_new_tokens.saturating_sub(1).max(1);
    let sep = Tensor::<B, 1, Int>::from_data(
        TensorData::new(last.iter().map(|&r| r as i64).collect::<Vec<_>>(), [b]),
        &device,
    );
    let mut cache: Vec<StepKv<B>> = kvs
        .into_iter()
        .map(|(k, v)| {
            if opts.attention_stop {
                let [_, _, kvh, hd] = k.dims();
                let keep =
                    |t: Tensor<B, 4>| t.reshape([b * s, kvh * hd]).select(0, sep.clone()).reshape([b, 1, kvh, hd]);
                StepKv::from_prefix(keep(k), keep(v), capacity)
            } else {
                StepKv::from_prefix(k, v, capacity)
            }
        })
        .collect();
    let mut active: Vec<usize> = Vec::new();
    for (r, mut l) in row_logits(model, hidden, &last).into_iter().enumerate() {
        if !rows[r].push(&mut l, eos_id, opts) {
            active.push(r);
        }
    }
    // Step g feeds each active row's g-th token (g from 1) at position prompt_len + g - 1; its key
    // and value go to cache column width + g - 1.
    let mut step = 1;
    while !active.is_empty() {
        let n = active.len();
        let at = width + step - 1;
        let mut mask = vec![true; n * capacity];
        let mut ids = Vec::with_capacity(n);
        let mut pos = Vec::with_capacity(n);
        for (i, &r) in active.iter().enumerate() {
            // The row's prompt columns (the rest of the prompt width is padding), then the
            // generated tokens so far and this one.
            mask[i * capacity..i * capacity + cached[r]].fill(false);
            mask[i * capacity + width..=i * capacity + at].fill(false);
            ids.push(*rows[r].ids.last().expect("a token per step") as i64);
            pos.push((rows[r].request.prompt.len() + step - 1) as i64);
        }
        let mask = AttentionMask::Explicit(Tensor::<B, 4, Bool>::from_data(
            TensorData::new(mask, [n, 1, 1, capacity]),
            &device,
        ));
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, 1]), &device);
        let pos = Tensor::<B, 2, Int>::from_data(TensorData::new(pos, [n, 1]), &device);
        let (hidden, next) = model.forward_step(ids, pos, &mask, cache, at);
        let logits = row_logits(model, hidden, &(0..n).collect::<Vec<_>>());
        let mut keep = Vec::with_capacity(n);
        for (i, mut l) in logits.into_iter().enumerate() {
            if !rows[active[i]].push(&mut l, eos_id, opts) {
                keep.push(i);
            }
        }
        cache = if keep.len() == n {
            next
        } else {
            let sel = Tensor::<B, 1, Int>::from_data(
                TensorData::new(keep.iter().map(|&i| i as i64).collect::<Vec<_>>(), [keep.len()]),
                &device,
            );
            next.into_iter().map(|kv| kv.select(sel.clone())).collect()
        };
        active = keep.into_iter().map(|i| active[i]).collect();
        step += 1;
    }
    rows.into_iter().map(Row::result).collect()
}

/// Every step re-runs each whole sequence (prompt, separator, tokens so far) under the mask.
fn generate_uncached<B: Backend>(
    model: &DecoderModel<B>,
    eos_id: u32,
    batch: &[&Request],
    opts: &GenerateOptions,
) -> Vec<Generated> {
    let device = model.device();
    let mut rows: Vec<Row> = batch.iter().map(|r| Row::new(r, opts.seed)).collect();
    let mut active: Vec<usize> = (0..rows.len()).collect();
    while !active.is_empty() {
        let seqs: Vec<Vec<u32>> =
            active.iter().map(|&r| [rows[r].request.prompt.as_slice(), rows[r].ids.as_slice()].concat()).collect();
        let padded = PaddedBatch::<B>::new(&seqs, eos_id, &device);
        let s = padded.input_ids.dims()[1];
        let mask = if opts.attention_stop {
            let seps: Vec<Option<usize>> = active.iter().map(|&r| Some(rows[r].request.prompt.len() - 1)).collect();
            let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
            AttentionMask::Explicit(super::attention_stop_mask(&seps, &lens, s, &device))
        } else {
            AttentionMask::Causal
        };
        let hidden = model.forward(padded.input_ids, padded.positions, &mask);
        let last: Vec<usize> = seqs.iter().enumerate().map(|(i, q)| i * s + q.len() - 1).collect();
        let logits = row_logits(model, hidden, &last);
        let mut keep = Vec::new();
        for (i, mut l) in logits.into_iter().enumerate() {
            if !rows[active[i]].push(&mut l, eos_id, opts) {
                keep.push(active[i]);
            }
        }
        active = keep;
    }
    rows.into_iter().map(Row::result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 3.0, 1.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -1.0]), 1);
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        // probabilities 0.5, 0.3, 0.2 (as logits), top_p 0.7: tokens 0 and 1 only.
        let logits: Vec<f32> = [0.5f32, 0.3, 0.2].iter().map(|p| p.ln()).collect();
        let mut seen = [0usize; 3];
        for i in 0..1000 {
            seen[sample_top_p(&logits, 0.7, 1.0, i as f64 / 1000.0) as usize] += 1;
        }
        assert_eq!(seen[2], 0, "{seen:?}");
        // Within the nucleus, in proportion: 0.5 / 0.8 of the draws.
        assert!((seen[0] as f64 / 1000.0 - 0.625).abs() < 0.01, "{seen:?}");
        // top_p 1 keeps everything; a tiny top_p is greedy.
        assert_eq!(sample_top_p(&logits, 1.0, 1.0, 0.999), 2);
        assert_eq!(sample_top_p(&logits, 1e-6, 1.0, 0.999), 0);
        // A large vocabulary whose nucleus is past the first sorted head (64 tokens).
        let flat = vec![0.0f32; 5000];
        let t = sample_top_p(&flat, 0.5, 1.0, 0.999);
        assert!((t as usize) < 5000);
        let mut hits = std::collections::HashSet::new();
        for i in 0..200 {
            hits.insert(sample_top_p(&flat, 0.5, 1.0, i as f64 / 200.0));
        }
        assert!(hits.len() > 150, "draws spread over the nucleus: {}", hits.len());
        assert!(Sampling::TopP { top_p: 0.0, temperature: 1.0 }.validate().is_err());
        assert!(Sampling::TopP { top_p: 0.9, temperature: 0.0 }.validate().is_err());
    }

    #[test]
    fn repeated_ngrams_are_banned() {
        let mut logits = vec![0.0f32; 10];
        // ids ... 3 4 ... 3: with n = 2, token 4 after 3 would repeat "3 4".
        ban_repeats(&mut logits, &[3, 4, 5, 3], 2);
        assert_eq!(logits[4], f32::NEG_INFINITY);
        assert_eq!(logits.iter().filter(|x| x.is_infinite()).count(), 1);
        ban_repeats(&mut logits, &[1], 2);
        assert_eq!(logits.iter().filter(|x| x.is_infinite()).count(), 1);
    }
}
