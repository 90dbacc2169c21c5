//! `llmql bench encode`: throughput of passage encoding, printed as one JSON line with the same
//! keys as `bench/pytorch_encode.py`, so the two can be compared side by side.
use anyhow::Result;
use burn::tensor::backend::Backend;
use clap::{Args, Subcommand};
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use llmql_core::encoder::length_sorted_batches;
use llmql_core::records::read_records;
use llmql_core::{Checkpoint, Encoder, EncoderOptions, Kind, Template};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Passage-encoding throughput (passages/s, tokens/s).
    Encode(BenchEncodeArgs),
    /// Exact top-K search throughput (queries/s) on seeded random unit vectors.
    Search(BenchSearchArgs),
    /// Per-query encode latency, one query at a time (median over N): the native side of the
    /// browser benchmark (web-demo/tests/browser-test.mjs --bench).
    QueryLatency(BenchQueryLatencyArgs),
    /// Stage-1 (QL) training throughput: the same steps as bench/pytorch_ql_train.py.
    QlTrain(BenchQlTrainArgs),
    /// Stage-2 (contrastive, LoRA) step time: the same steps as bench/pytorch_train_contrastive.py.
    Train(BenchTrainArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchTrainArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub train_data: PathBuf,
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 16)]
    pub train_group_size: usize,
    #[arg(long, default_value_t = 32)]
    pub query_max_len: usize,
    #[arg(long, default_value_t = 128)]
    pub passage_max_len: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 32)]
    pub lora_r: usize,
    #[arg(long, default_value_t = 64.0)]
    pub lora_alpha: f64,
    #[arg(long, default_value_t = 0.1)]
    pub lora_dropout: f64,
    #[arg(long, default_value_t = 0.01)]
    pub temperature: f64,
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Compute dtype of the base weights: f32 | bf16 | f16 (LoRA adapters stay f32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Gradient checkpointing per decoder layer (as `train --gradient-checkpointing`).
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// Burn's op-level recomputation (as `train --op-checkpointing`).
    #[arg(long)]
    pub op_checkpointing: bool,
}

struct TrainBench {
    a: BenchTrainArgs,
    ckpt: Checkpoint,
    /// (query ids, group passage ids)
    examples: Vec<(Vec<u32>, Vec<Vec<u32>>)>,
}

impl llmql_backends::AutodiffTask for TrainBench {
    type Output = Result<serde_json::Value>;
    fn run<B: burn::tensor::backend::AutodiffBackend>(self, device: B::Device) -> Result<serde_json::Value> {
        use burn::optim::{AdamWConfig, Optimizer};
        use llmql_core::train::layer_checkpoint::LayerCheckpointing;
        use burn::tensor::ElementConversion;
        use llmql_core::model::{DecoderModel, LoadOptions};
        use llmql_core::pooling::Pooling;
        let a = &self.a;
        let eos = self.ckpt.tokenizer.eos_id;
        let model = self.ckpt.load_model::<B>(LoadOptions { dtype: super::parse_dtype(&a.dtype)?, lm_head: false, host_embeddings: false, compute_dtype: None }, &device)?;
        let lc = llmql_core::lora::LoraConfig { r: a.lora_r, lora_alpha: a.lora_alpha, lora_dropout: a.lora_dropout, ..Default::default() };
        let mut model = llmql_core::lora::attach_lora(model, &lc, 0)?;
        let mut optim = AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(0.0).init::<B, DecoderModel<B>>();
        let n = self.examples.len();
        let mut tokens = 0usize;
        let mut losses = Vec::new();
        let mut start = Instant::now();
        for k in 0..=a.steps {
            if k == 1 {
                start = Instant::now(); // step 0 is the warm-up
            }
            let batch: Vec<&(Vec<u32>, Vec<Vec<u32>>)> = (0..a.batch_size).map(|r| &self.examples[(k * a.batch_size + r) % n]).collect();
            let qs: Vec<Vec<u32>> = batch.iter().map(|e| e.0.clone()).collect();
            let ps: Vec<Vec<u32>> = batch.iter().flat_map(|e| e.1.clone()).collect();
            let ck = LayerCheckpointing::<B>::start(a.gradient_checkpointing, k as u64);
            let q = llmql_core::encoder::embed(&model, &qs, eos, Pooling::Eos, true);
            let p = llmql_core::encoder::embed(&model, &ps, eos, Pooling::Eos, true);
            let loss = llmql_core::infonce::infonce_loss(q, p, a.train_group_size, a.temperature);
            let lv = loss.clone().into_scalar().elem::<f64>();
            let grads = ck.backward(loss, &model);
            model = optim.step(a.lr, model, grads);
            if k > 0 {
                tokens += qs.iter().chain(ps.iter()).map(Vec::len).sum::<usize>();
                losses.push(lv);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(serde_json::json!({
            "impl": "llmql",
            "steps": a.steps,
            "tokens": tokens,
            "seconds": secs,
            "tokens_per_s": tokens as f64 / secs,
            "step_seconds": secs / a.steps as f64,
            "threads": rayon::current_num_threads(),
            "batch_size": a.batch_size,
            "group": a.train_group_size,
            "loss_first": losses.first(),
            "peak_rss_mib": peak_rss_mib(),
            "gradient_checkpointing": a.gradient_checkpointing,
            "loss_last": losses.last(),
            "device": a.device,
        }))
    }
}

#[derive(Args, Debug, Clone)]
pub struct BenchQlTrainArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Tevatron jsonl (query + positive_passages).
    #[arg(long)]
    pub train_data: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 200)]
    pub p_max_len: usize,
    #[arg(long, default_value_t = 200)]
    pub q_max_len: usize,
    #[arg(long, default_value_t = 1e-5)]
    pub lr: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, default_value = "all")]
    pub loss_on: String,
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Compute dtype: f32 | bf16 | f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Gradient checkpointing per decoder layer (as `ql-train --gradient-checkpointing`).
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// Burn's op-level recomputation (as `ql-train --op-checkpointing`).
    #[arg(long)]
    pub op_checkpointing: bool,
}

struct QlTrainBench {
    a: BenchQlTrainArgs,
    ckpt: Checkpoint,
    pairs: Vec<(String, String)>,
}

impl llmql_backends::AutodiffTask for QlTrainBench {
    type Output = Result<serde_json::Value>;
    fn run<B: burn::tensor::backend::AutodiffBackend>(self, device: B::Device) -> Result<serde_json::Value> {
        use burn::optim::{AdamWConfig, Optimizer};
        use llmql_core::train::layer_checkpoint::LayerCheckpointing;
        use burn::tensor::ElementConversion;
        use llmql_core::model::{DecoderModel, LoadOptions};
        use llmql_core::ql::{build_d2q, target_log_probs, LossOn, QlBatch};
        let a = &self.a;
        let tok = &self.ckpt.tokenizer;
        let on: LossOn = a.loss_on.parse().map_err(anyhow::Error::msg)?;
        let mut model = self.ckpt.load_model::<B>(LoadOptions { dtype: super::parse_dtype(&self.a.dtype)?, lm_head: true, host_embeddings: false, compute_dtype: None }, &device)?;
        let examples = self
            .pairs
            .iter()
            .map(|(p, q)| build_d2q(tok, p, q, a.p_max_len, a.q_max_len))
            .collect::<llmql_core::Result<Vec<_>>>()?;
        let mut optim = AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(0.0).init::<B, DecoderModel<B>>();
        let batch_at = |k: usize| -> Vec<_> { (0..a.batch_size).map(|r| examples[(k * a.batch_size + r) % examples.len()].clone()).collect() };
        let mut losses = Vec::new();
        let mut tokens = 0usize;
        let mut start = Instant::now();
        for k in 0..=a.steps {
            if k == 1 {
                start = Instant::now(); // step 0 is the warm-up
            }
            let ex = batch_at(k);
            let batch = QlBatch::<B>::new(&ex, on, tok.eos_id, true, &device);
            let ck = LayerCheckpointing::<B>::start(a.gradient_checkpointing, k as u64);
            let loss = target_log_probs(&model, &batch).mean().neg();
            let lv = loss.clone().into_scalar().elem::<f64>();
            let mut grads = ck.backward(loss, &model);
            llmql_core::train::clip::clip_global_norm(&model, &mut grads, (a.max_grad_norm > 0.0).then_some(a.max_grad_norm));
            model = optim.step(a.lr, model, grads);
            if k > 0 {
                tokens += batch.real_tokens;
                losses.push(lv);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(serde_json::json!({
            "impl": "llmql",
            "steps": a.steps,
            "tokens": tokens,
            "seconds": secs,
            "tokens_per_s": tokens as f64 / secs,
            "threads": rayon::current_num_threads(),
            "batch_size": a.batch_size,
            "p_max_len": a.p_max_len,
            "q_max_len": a.q_max_len,
            "loss_first": losses.first(),
            "peak_rss_mib": peak_rss_mib(),
            "gradient_checkpointing": a.gradient_checkpointing,
            "loss_last": losses.last(),
            "device": a.device,
        }))
    }
}

#[derive(Args, Debug, Clone)]
pub struct BenchSearchArgs {
    #[arg(long, default_value_t = 100_000)]
    pub corpus_size: usize,
    #[arg(long, default_value_t = 1024)]
    pub dim: usize,
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    #[arg(long, default_value_t = 100)]
    pub depth: usize,
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long, default_value_t = 16384)]
    pub block_rows: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Seeded standard-normal-ish rows (sum of uniforms), L2-normalised: same generator as bench/numpy_search.py
/// does not matter for speed; only sizes do.
fn random_unit_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut v = vec![0f32; n * dim];
    for row in v.chunks_mut(dim) {
        for x in row.iter_mut() {
            *x = next() + next() + next();
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

struct SearchBench {
    a: BenchSearchArgs,
}

impl BackendTask for SearchBench {
    type Output = Result<serde_json::Value>;
    fn run<B: Backend>(self, device: B::Device) -> Result<serde_json::Value> {
        use llmql_core::search::{Embeddings, ExactSearch};
        let a = &self.a;
        let corpus = Embeddings {
            ids: (0..a.corpus_size).map(|i| format!("d{i}")).collect(),
            values: random_unit_rows(a.corpus_size, a.dim, a.seed),
            dim: a.dim,
        };
        let queries = Embeddings {
            ids: (0..a.queries).map(|i| format!("q{i}")).collect(),
            values: random_unit_rows(a.queries, a.dim, a.seed + 1),
            dim: a.dim,
        };
        // Warm-up on a small slice (kernel compilation on GPU backends).
        let warm = Embeddings { ids: corpus.ids[..16].to_vec(), values: corpus.values[..16 * a.dim].to_vec(), dim: a.dim };
        let mut w = ExactSearch::<B>::new(&queries, a.depth, &device);
        w.add(&warm)?;
        let start = Instant::now();
        let mut s = ExactSearch::<B>::new(&queries, a.depth, &device);
        s.block_rows = a.block_rows;
        s.add(&corpus)?;
        let run = s.finish();
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(&run);
        Ok(serde_json::json!({
            "impl": "llmql",
            "corpus_size": a.corpus_size,
            "dim": a.dim,
            "queries": a.queries,
            "depth": a.depth,
            "seconds": secs,
            "queries_per_s": a.queries as f64 / secs,
            "threads": rayon::current_num_threads(),
            "device": a.device,
        }))
    }
}

#[derive(Args, Debug, Clone)]
pub struct BenchEncodeArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    #[arg(long, default_value = "llmql")]
    pub template: String,
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Only the first N records.
    #[arg(long)]
    pub limit: Option<usize>,
}

struct Task {
    a: BenchEncodeArgs,
    ckpt: Checkpoint,
}

impl BackendTask for Task {
    type Output = Result<serde_json::Value>;
    fn run<B: Backend>(self, device: B::Device) -> Result<serde_json::Value> {
        let a = &self.a;
        let dtype = super::parse_dtype(&a.dtype)?;
        let options = EncoderOptions {
            template: a.template.parse::<Template>().map_err(anyhow::Error::msg)?,
            max_len: a.max_len,
            ..Default::default()
        };
        let enc = Encoder::<B>::load(&self.ckpt, options, dtype, &device)?;
        let mut recs = read_records(&a.input)?;
        if let Some(n) = a.limit {
            recs.truncate(n);
        }
        let seqs = recs
            .iter()
            .map(|r| enc.tokenize(Kind::Passage, r.title.as_deref(), &r.text))
            .collect::<llmql_core::Result<Vec<_>>>()?;
        let tokens: usize = seqs.iter().map(Vec::len).sum();
        let batches = length_sorted_batches(&seqs.iter().map(Vec::len).collect::<Vec<_>>(), a.batch_size);
        // Warm-up: one batch (kernel compilation on GPU backends, allocator on CPU).
        let first: Vec<Vec<u32>> = batches[0].iter().map(|&i| seqs[i].clone()).collect();
        enc.embed_ids_to_vec(&first);
        let start = Instant::now();
        for b in &batches {
            let bs: Vec<Vec<u32>> = b.iter().map(|&i| seqs[i].clone()).collect();
            std::hint::black_box(enc.embed_ids_to_vec(&bs));
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(serde_json::json!({
            "impl": "llmql",
            "passages": recs.len(),
            "tokens": tokens,
            "seconds": secs,
            "passages_per_s": recs.len() as f64 / secs,
            "tokens_per_s": tokens as f64 / secs,
            "threads": rayon::current_num_threads(),
            "batch_size": a.batch_size,
            "max_len": a.max_len,
            "device": a.device,
            "dtype": a.dtype,
        }))
    }
}

#[derive(Args, Debug, Clone)]
pub struct BenchQueryLatencyArgs {
    /// Model (folder, .gguf or hub id), e.g. an export-web folder's model/.
    #[arg(long)]
    pub model: PathBuf,
    /// A PEFT adapter merged into the model first.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Queries (JSON lines with `text`); cycled to reach --queries.
    #[arg(long)]
    pub input: PathBuf,
    /// Number of timed queries (after one untimed warm-up).
    #[arg(long, default_value_t = 50)]
    pub queries: usize,
    #[arg(long, default_value_t = 32)]
    pub max_len: usize,
    #[arg(long, default_value = "llmql")]
    pub template: String,
    #[arg(long, default_value = "flex")]
    pub device: String,
}

struct LatencyTask {
    a: BenchQueryLatencyArgs,
    ckpt: Checkpoint,
}

impl BackendTask for LatencyTask {
    type Output = Result<serde_json::Value>;
    fn run<B: Backend>(self, device: B::Device) -> Result<serde_json::Value> {
        use llmql_core::model::LoadOptions;
        let a = &self.a;
        let options = EncoderOptions {
            template: a.template.parse::<Template>().map_err(anyhow::Error::msg)?,
            max_len: a.max_len,
            ..Default::default()
        };
        let load = LoadOptions { dtype: burn::tensor::DType::F32, lm_head: false, host_embeddings: false, compute_dtype: None };
        let mut model = self.ckpt.load_model::<B>(load, &device)?;
        if let Some(ad) = &a.adapter {
            model = llmql_core::lora::merge_lora(llmql_core::lora::load_adapter(model, ad)?);
        }
        let enc = Encoder::from_model(model, self.ckpt.tokenizer.clone(), options, None);
        let recs = read_records(&a.input)?;
        anyhow::ensure!(!recs.is_empty(), "{}: no queries", a.input.display());
        let texts: Vec<&str> = (0..a.queries.max(1)).map(|i| recs[i % recs.len()].text.as_str()).collect();
        // Untimed warm-up, then each query alone: tokenize + forward + readback, as the page does.
        enc.embed_ids_to_vec(&[enc.tokenize(Kind::Query, None, texts[0])?]);
        let mut ms = Vec::with_capacity(texts.len());
        for t in &texts {
            let start = Instant::now();
            std::hint::black_box(enc.embed_ids_to_vec(&[enc.tokenize(Kind::Query, None, t)?]));
            ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 { ms[n / 2] } else { (ms[n / 2 - 1] + ms[n / 2]) / 2.0 };
        Ok(serde_json::json!({
            "impl": "llmql-native",
            "device": a.device,
            "queries": n,
            "median_ms": (median * 100.0).round() / 100.0,
            "p90_ms": (ms[((n - 1) as f64 * 0.9) as usize] * 100.0).round() / 100.0,
            "min_ms": (ms[0] * 100.0).round() / 100.0,
            "threads": rayon::current_num_threads(),
        }))
    }
}

pub fn run(c: BenchCommand) -> Result<()> {
    match c {
        BenchCommand::QueryLatency(a) => {
            let device: DeviceSpec = a.device.parse()?;
            let ckpt = Checkpoint::open(&a.model)?;
            let v = run_on(&device, LatencyTask { a, ckpt })??;
            println!("{v}");
            Ok(())
        }
        BenchCommand::Encode(a) => {
            let device: DeviceSpec = a.device.parse()?;
            let ckpt = Checkpoint::open(&a.model)?;
            let v = run_on(&device, Task { a, ckpt })??;
            println!("{v}");
            Ok(())
        }
        BenchCommand::QlTrain(a) => {
            let device: DeviceSpec = a.device.parse()?;
            let ckpt = Checkpoint::open(&a.model)?;
            let mut pairs = Vec::new();
            for ex in llmql_core::formats::read_tevatron(&a.train_data)? {
                // The first positive only, as bench/pytorch_ql_train.py does.
                if let Some(p) = ex.positive_passages.first() {
                    let title = (!p.title.is_empty()).then_some(p.title.as_str());
                    pairs.push((llmql_core::ql::passage_text(title, &p.text), ex.query.clone()));
                }
            }
            let ckp = a.op_checkpointing;
            let v = llmql_backends::run_autodiff_on(&device, ckp, QlTrainBench { a, ckpt, pairs })??;
            println!("{v}");
            Ok(())
        }
        BenchCommand::Train(a) => {
            let device: DeviceSpec = a.device.parse()?;
            let ckpt = Checkpoint::open(&a.model)?;
            let tok = &ckpt.tokenizer;
            let mut examples = Vec::new();
            // As bench/pytorch_train_contrastive.py: first positive + the first G-1 negatives (cycling);
            // examples without negatives are skipped.
            for ex in llmql_core::formats::read_tevatron(&a.train_data)? {
                let (Some(pos), false) = (ex.positive_passages.first(), ex.negative_passages.is_empty()) else { continue };
                let q = tok.encode_with_eos(&Template::Llmql.query(&ex.query), a.query_max_len)?;
                let mut group = vec![tok.encode_with_eos(&Template::Llmql.passage(&pos.title, &pos.text), a.passage_max_len)?];
                for i in 0..a.train_group_size.saturating_sub(1) {
                    let n = &ex.negative_passages[i % ex.negative_passages.len()];
                    group.push(tok.encode_with_eos(&Template::Llmql.passage(&n.title, &n.text), a.passage_max_len)?);
                }
                examples.push((q, group));
            }
            anyhow::ensure!(!examples.is_empty(), "{}: no example with a positive and a negative", a.train_data.display());
            let ckp = a.op_checkpointing;
            let v = llmql_backends::run_autodiff_on(&device, ckp, TrainBench { a, ckpt, examples })??;
            println!("{v}");
            Ok(())
        }
        BenchCommand::Search(a) => {
            let device: DeviceSpec = a.device.parse()?;
            let v = run_on(&device, SearchBench { a })??;
            println!("{v}");
            Ok(())
        }
    }
}

/// The process's peak resident set (Linux `VmHWM`), in MiB; `None` elsewhere. On the CPU backend
/// this is where activations live, so it compares checkpointing choices.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
