//! The model thread and its dynamic batching.
//!
//! Burn tensors are not meant to cross `await` points or threads, so the encoder lives on one
//! dedicated thread (on the chosen backend) that HTTP handlers feed through a channel. The thread
//! takes the first waiting request, then keeps taking requests for at most `max_wait` while the
//! batch stays within `max_batch_tokens` (unpadded, summed over inputs; a request that would
//! overflow it starts the next batch); it then encodes the batch in length-sorted forward passes
//! of at most `max_batch_tokens` padded tokens, and answers every request. A request's vectors
//! do not depend on its batch companions: right padding never changes a row's result (the
//! encoder's padding-invariance tests), and each row is pooled and normalised on its own.
use super::metrics::Metrics;
use anyhow::Result;
use burn::tensor::backend::Backend;
use llmql_backends::BackendTask;
use llmql_core::{Encoder, EncoderOptions, Kind, ModelSource};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One request's texts, of one kind.
pub struct Job {
    pub kind: Kind,
    pub texts: Vec<String>,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<Encoded, String>>,
}

/// A request's vectors (in input order) and its token count (with template and EOS).
pub struct Encoded {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: usize,
}

/// How the model thread batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_batch_tokens: usize,
    pub max_wait: Duration,
    pub query_max_len: usize,
    pub passage_max_len: usize,
}

/// What the model thread reports once the model is loaded.
pub struct Ready {
    pub dim: usize,
}

/// The model thread's work: load the encoder, report, then serve jobs until every sender is gone.
pub struct ModelWorker {
    pub ckpt: ModelSource,
    pub adapter: Option<PathBuf>,
    pub options: EncoderOptions,
    pub dtype: burn::tensor::DType,
    pub limits: BatchLimits,
    pub jobs: Receiver<Job>,
    pub ready: std::sync::mpsc::SyncSender<Result<Ready>>,
    pub metrics: Arc<Metrics>,
}

/// A job with its token ids.
struct Tokenized {
    job: Job,
    seqs: Vec<Vec<u32>>,
    tokens: usize,
}

impl BackendTask for ModelWorker {
    type Output = ();
    fn run<B: Backend>(self, device: B::Device) {
        let loaded = (|| -> Result<Encoder<B>> {
            let mut encoder = Encoder::<B>::load(&self.ckpt, self.options, self.dtype, &device)?;
            if let Some(ad) = &self.adapter {
                encoder.model = llmql_core::lora::load_adapter(encoder.model, ad)?;
            }
            Ok(encoder)
        })();
        let mut encoder = match loaded {
            Ok(e) => e,
            Err(e) => {
                let _ = self.ready.send(Err(e));
                return;
            }
        };
        if self.ready.send(Ok(Ready { dim: encoder.dim() })).is_err() {
            return;
        }
        let delay = test_delay();
        let mut carry: Option<Tokenized> = None;
        loop {
            let first = match carry.take() {
                Some(t) => t,
                None => match self.jobs.recv() {
                    Ok(job) => match tokenize(&mut encoder, &self.limits, job) {
                        Some(t) => t,
                        None => continue,
                    },
                    Err(_) => break, // the server is gone
                },
            };
            let deadline = Instant::now() + self.limits.max_wait;
            let mut tokens = first.tokens;
            let mut batch = vec![first];
            while tokens < self.limits.max_batch_tokens {
                let now = Instant::now();
                let job = match self.jobs.recv_timeout(deadline.saturating_duration_since(now)) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                };
                let Some(t) = tokenize(&mut encoder, &self.limits, job) else {
                    continue;
                };
                if tokens + t.tokens > self.limits.max_batch_tokens {
                    carry = Some(t);
                    break;
                }
                tokens += t.tokens;
                batch.push(t);
            }
            if let Some(d) = delay {
                std::thread::sleep(d);
            }
            self.encode_batch(&encoder, batch, tokens);
        }
    }
}

impl ModelWorker {
    fn encode_batch<B: Backend>(&self, encoder: &Encoder<B>, batch: Vec<Tokenized>, tokens: usize) {
        let start = Instant::now();
        for t in &batch {
            self.metrics.queue_seconds.observe(start.duration_since(t.job.enqueued).as_secs_f64());
        }
        // Every sequence of the batch, as (job, position in job).
        let seqs: Vec<(usize, usize, &Vec<u32>)> = batch
            .iter()
            .enumerate()
            .flat_map(|(j, t)| t.seqs.iter().enumerate().map(move |(i, s)| (j, i, s)))
            .collect();
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by(|&a, &b| seqs[b].2.len().cmp(&seqs[a].2.len()).then(a.cmp(&b)));
        let mut out: Vec<Vec<Vec<f32>>> = batch.iter().map(|t| vec![Vec::new(); t.seqs.len()]).collect();
        // Forward passes of at most max_batch_tokens padded tokens (longest first: the first row
        // of a pass is its longest).
        let mut i = 0;
        while i < order.len() {
            let longest = seqs[order[i]].2.len().max(1);
            let n = (self.limits.max_batch_tokens / longest).clamp(1, order.len() - i);
            let pass = &order[i..i + n];
            let ids: Vec<Vec<u32>> = pass.iter().map(|&k| seqs[k].2.clone()).collect();
            let rows = encoder.embed_ids_to_vec(&ids);
            for (&k, row) in pass.iter().zip(rows) {
                out[seqs[k].0][seqs[k].1] = row;
            }
            i += n;
        }
        self.metrics.encode_seconds.observe(start.elapsed().as_secs_f64());
        self.metrics.batch_requests.observe(batch.len() as f64);
        self.metrics.batch_inputs.observe(seqs.len() as f64);
        self.metrics.batch_tokens.observe(tokens as f64);
        for (t, vectors) in batch.into_iter().zip(out) {
            let result = if vectors.iter().all(|v| v.iter().all(|x| x.is_finite())) {
                Ok(Encoded { vectors, tokens: t.tokens })
            } else {
                Err("the model produced a non-finite embedding (try --dtype f32)".to_string())
            };
            let _ = t.job.reply.send(result);
        }
    }
}

/// Token ids of a job's texts, each cut to its kind's length limit; a tokenizer error answers the
/// job (and gives `None`).
fn tokenize<B: Backend>(encoder: &mut Encoder<B>, limits: &BatchLimits, job: Job) -> Option<Tokenized> {
    encoder.options.max_len = match job.kind {
        Kind::Query => limits.query_max_len,
        Kind::Passage => limits.passage_max_len,
    };
    let seqs: Result<Vec<Vec<u32>>, _> = job.texts.iter().map(|t| encoder.tokenize(job.kind, None, t)).collect();
    match seqs {
        Ok(seqs) => {
            let tokens = seqs.iter().map(Vec::len).sum();
            Some(Tokenized { job, seqs, tokens })
        }
        Err(e) => {
            let _ = job.reply.send(Err(format!("cannot tokenize the input: {e}")));
            None
        }
    }
}

/// Test hook (`LLMQL_TEST_SERVE_DELAY_MS`): sleep this long before each batch, so tests can hold
/// requests in flight (shutdown drain, overload).
fn test_delay() -> Option<Duration> {
    std::env::var("LLMQL_TEST_SERVE_DELAY_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis)
}
