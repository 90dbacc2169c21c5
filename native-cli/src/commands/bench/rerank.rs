//! `llmql bench rerank`: QL rerank throughput through [`ql_scores`], the scorer `llmql rerank` runs
//! (each document's prompt + separator once, keeping the separator's keys/values; then each pair's
//! query tokens against that one-position cache, under Attention Stop). The pairs: each of the
//! first `--queries` Tevatron examples' query against its positive and negative passages (at most
//! `--depth`). Same keys as `bench/pytorch_rerank.py`, which scores the very token ids this run
//! dumps (`--dump-pairs`) with transformers and a KV cache of the separator.
use anyhow::Result;
use burn::tensor::backend::Backend;
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use llmql_core::formats::read_tevatron;
use llmql_core::model::LoadOptions;
use llmql_core::ql::example::{build_example, passage_text, Direction, QlLengths};
use llmql_core::ql::{ql_scores, QlScoreOptions};
use llmql_core::truncation::Truncation;
use llmql_core::ModelSource;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct BenchRerankArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Tevatron jsonl (query, positive_passages, negative_passages).
    #[arg(long)]
    pub train_data: PathBuf,
    /// Queries: the first N examples.
    #[arg(long, default_value_t = 16)]
    pub queries: usize,
    /// Documents per query (positives first, then negatives).
    #[arg(long, default_value_t = 16)]
    pub depth: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 200)]
    pub p_max_len: usize,
    #[arg(long, default_value_t = 200)]
    pub q_max_len: usize,
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Write each pair's token ids (`prefix`: prompt + separator, `query`: query + EOS) as JSON
    /// lines, for bench/pytorch_rerank.py --pairs.
    #[arg(long)]
    pub dump_pairs: Option<PathBuf>,
}

struct Task {
    a: BenchRerankArgs,
    ckpt: ModelSource,
    /// (passage text, query text)
    pairs: Vec<(String, String)>,
}

impl BackendTask for Task {
    type Output = Result<serde_json::Value>;
    fn run<B: Backend>(self, device: B::Device) -> Result<serde_json::Value> {
        let a = &self.a;
        let dtype = crate::commands::parse_dtype(&a.dtype)?;
        let model = self.ckpt.load_model::<B>(
            LoadOptions { dtype, lm_head: true, host_embeddings: false, compute_dtype: None },
            &device,
        )?;
        let tok = &self.ckpt.tokenizer;
        let opts = QlScoreOptions {
            p_max_len: a.p_max_len,
            q_max_len: a.q_max_len,
            truncation: Truncation::Content,
            batch_size: a.batch_size,
            attention_stop: true,
        };
        // What ql_scores will build (not timed): token counts and the dump.
        let lengths = QlLengths { p_max_len: a.p_max_len, q_max_len: a.q_max_len, truncation: opts.truncation };
        let examples = self
            .pairs
            .iter()
            .map(|(p, q)| build_example(tok, Direction::D2q, p, q, &lengths))
            .collect::<llmql_core::Result<Vec<_>>>()?;
        let mut seen = HashSet::new();
        let mut doc_tokens = 0usize;
        let mut query_tokens = 0usize;
        for e in &examples {
            if seen.insert(&e.input_ids[..=e.sep_pos]) {
                doc_tokens += e.sep_pos + 1;
            }
            query_tokens += e.len() - e.sep_pos - 2;
        }
        if let Some(path) = &a.dump_pairs {
            let dump: Vec<serde_json::Value> = examples
                .iter()
                .map(|e| serde_json::json!({"prefix": &e.input_ids[..=e.sep_pos], "query": &e.input_ids[e.sep_pos + 1..]}))
                .collect();
            super::write_jsonl(path, &dump)?;
        }
        // Warm-up, not timed (allocator; kernel compilation on GPU backends).
        let warm = &self.pairs[..self.pairs.len().min(a.batch_size)];
        ql_scores(&model, tok, warm, opts, |_| {})?;
        let start = Instant::now();
        let scores = ql_scores(&model, tok, &self.pairs, opts, |_| {})?;
        let secs = start.elapsed().as_secs_f64();
        let n = scores.len();
        Ok(serde_json::json!({
            "impl": "llmql",
            "pairs": n,
            "documents": seen.len(),
            "doc_tokens": doc_tokens,
            "query_tokens": query_tokens,
            "tokens": doc_tokens + query_tokens,
            "seconds": secs,
            "pairs_per_s": n as f64 / secs,
            "tokens_per_s": (doc_tokens + query_tokens) as f64 / secs,
            "scores_sum": scores.iter().sum::<f64>(),
            "threads": rayon::current_num_threads(),
            "batch_size": a.batch_size,
            "p_max_len": a.p_max_len,
            "q_max_len": a.q_max_len,
            "peak_rss_mib": super::peak_rss_mib(),
            "device": a.device,
        }))
    }
}

pub fn run(a: BenchRerankArgs) -> Result<serde_json::Value> {
    let device: DeviceSpec = a.device.parse()?;
    let ckpt = ModelSource::open(&a.model)?;
    let mut pairs = Vec::new();
    for ex in read_tevatron(&a.train_data)?.into_iter().take(a.queries) {
        for p in ex.positive_passages.iter().chain(&ex.negative_passages).take(a.depth) {
            let title = (!p.title.is_empty()).then_some(p.title.as_str());
            pairs.push((passage_text(title, &p.text), ex.query.clone()));
        }
    }
    anyhow::ensure!(!pairs.is_empty(), "{}: no (query, passage) pairs", a.train_data.display());
    run_on(&device, Task { a, ckpt, pairs })?
}
