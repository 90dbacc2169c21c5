//! `llmql bench ...`: benchmarks of the code paths the commands run, each printing one JSON line
//! with the same keys as its reference script in `bench/` (PyTorch, numpy), so the two can be
//! compared side by side (`scripts/bench-cpu.sh` runs them all and prints one table).
//!
//! - `encode`: [`llmql_core::Encoder::embed_all`], as `llmql encode` runs it;
//! - `ql-train` / `train`: the real training loops (`QlStage`, `ContrastiveStage` in `llmql_core::train::train`)
//!   with intermediate saves off; the timer reads the loop's own step callbacks, so the warm-up step
//!   and the final save are not timed; `--dump-batches` writes the token ids of every step for the
//!   PyTorch side to train on the same batches;
//! - `rerank`: [`llmql_core::ql::ql_scores`], as `llmql rerank` runs it (`--dump-pairs` likewise);
//! - `search`, `query-latency`: exact search and one-query encode latency;
//! - `gemm`: the GEMM peak of the backend (large square f32 matmul), the yardstick for the others.
mod encode;
mod gemm;
pub(crate) mod index;
mod ql_train;
mod query_latency;
mod rerank;
mod search;
mod serve;
mod train;

use anyhow::Result;
use clap::{Args, Subcommand};
use llmql_core::train::checkpoint::LogEntry;
use llmql_core::train::{BatchInputs, TrainObserver, TrainSettings, Warmup};
use llmql_core::weights::StoredDtype;
use std::path::PathBuf;
use std::time::Instant;

/// The flags both training benchmarks share (each adds its stage's own).
#[derive(Args, Debug, Clone)]
pub(crate) struct BenchRunArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Tevatron jsonl, read as `llmql train` / `llmql ql-train` read --train-data.
    #[arg(long)]
    pub train_data: PathBuf,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Compute dtype: f32 | bf16 | f16 (LoRA adapters stay f32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Gradient checkpointing per decoder layer (as the training commands' --gradient-checkpointing).
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// Burn's op-level recomputation (as the training commands' --op-checkpointing).
    #[arg(long)]
    pub op_checkpointing: bool,
    /// Write every step's token ids as JSON lines, for the PyTorch script's --batches.
    #[arg(long)]
    pub dump_batches: Option<PathBuf>,
}

impl BenchRunArgs {
    /// The settings of a benchmark run on top of the stage's own (`base`): `steps` timed steps after
    /// one warm-up step, no intermediate saves, the full learning rate from the first update (as the
    /// PyTorch side's constant one).
    pub fn settings(&self, steps: usize, learning_rate: f64, batch_size: usize, base: TrainSettings) -> TrainSettings {
        TrainSettings {
            learning_rate,
            max_steps: Some(steps + 1),
            per_device_train_batch_size: batch_size,
            warmup: Warmup::Steps(0),
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
            seed: self.seed,
            logging_steps: 1,
            save_steps: 0,
            save_dtype: StoredDtype::F32,
            grad_checkpoint: self.gradient_checkpointing,
            ..base
        }
    }
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Passage-encoding throughput (passages/s, tokens/s), as `llmql encode` runs.
    Encode(encode::BenchEncodeArgs),
    /// Exact top-K search throughput (queries/s) on seeded random unit vectors.
    Search(search::BenchSearchArgs),
    /// Per-query encode latency, one query at a time (median over N): the native side of the
    /// browser benchmark (web-demo/tests/browser-test.mjs --bench).
    QueryLatency(query_latency::BenchQueryLatencyArgs),
    /// Stage-1 (QL) training throughput: `llmql ql-train`'s loop (compare bench/pytorch_ql_train.py).
    QlTrain(ql_train::BenchQlTrainArgs),
    /// Stage-2 (contrastive, LoRA) step time: `llmql train`'s loop (compare bench/pytorch_train_contrastive.py).
    Train(train::BenchTrainArgs),
    /// QL rerank throughput (pairs/s): `llmql rerank`'s scorer (compare bench/pytorch_rerank.py).
    Rerank(rerank::BenchRerankArgs),
    /// Flat (exact) versus HNSW (approximate) index on a synthetic clustered corpus: build time,
    /// recall@k against exact search, queries/s, memory.
    Index(index::BenchIndexArgs),
    /// Load on a running `llmql serve`: K concurrent clients for a while; requests/s, p50/p99
    /// latency, errors, server memory at start and end.
    Serve(serve::BenchServeArgs),
    /// GEMM peak: large square f32 matmuls on the backend (GFLOP/s); compare bench/torch_gemm.py.
    Gemm(gemm::BenchGemmArgs),
}

pub fn run(c: BenchCommand) -> Result<()> {
    let v = match c {
        BenchCommand::Encode(a) => encode::run(a)?,
        BenchCommand::Search(a) => search::run(a)?,
        BenchCommand::QueryLatency(a) => query_latency::run(a)?,
        BenchCommand::QlTrain(a) => ql_train::run(a)?,
        BenchCommand::Train(a) => train::run(a)?,
        BenchCommand::Rerank(a) => rerank::run(a)?,
        BenchCommand::Gemm(a) => gemm::run(a)?,
        BenchCommand::Index(a) => index::run(a)?,
        BenchCommand::Serve(a) => serve::run(a)?,
    };
    println!("{v}");
    Ok(())
}

/// The process's peak resident set (Linux `VmHWM`), in MiB; `None` elsewhere. On the CPU backend
/// this is where activations live, so it compares checkpointing choices.
pub(crate) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Times a real training loop from its own callbacks: step 1 is the warm-up; steps 2..=N+1 are
/// timed (from the end of step 1 to the end of the last step, before the loop's final save), with
/// their real (non-padding) tokens, losses and the peak RSS at the end of the last step. With
/// `dump`, every micro-batch's token ids are kept (one JSON value per micro-batch).
pub(crate) struct StepClock {
    last: usize,
    ends: Vec<(usize, Instant)>,
    tokens: Vec<(usize, usize)>,
    losses: Vec<(usize, f64)>,
    peak: Option<f64>,
    pub dump: Option<Vec<serde_json::Value>>,
}

/// What [`StepClock::summary`] measured.
pub(crate) struct StepSummary {
    pub steps: usize,
    pub seconds: f64,
    pub tokens: usize,
    pub loss_first: Option<f64>,
    pub loss_last: Option<f64>,
    pub peak_rss_mib: Option<f64>,
}

impl StepClock {
    /// For a loop of `last` steps in all (the warm-up step included).
    pub fn new(last: usize, dump: bool) -> Self {
        Self { last, ends: Vec::new(), tokens: Vec::new(), losses: Vec::new(), peak: None, dump: dump.then(Vec::new) }
    }

    pub fn summary(&self) -> StepSummary {
        let end = |s: usize| self.ends.iter().find(|(k, _)| *k == s).map(|(_, t)| *t);
        let seconds = match (end(1), end(self.last)) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => f64::NAN,
        };
        let timed = |s: usize| s >= 2 && s <= self.last;
        let losses: Vec<f64> = self.losses.iter().filter(|(s, _)| timed(*s)).map(|(_, l)| *l).collect();
        StepSummary {
            steps: self.last.saturating_sub(1),
            seconds,
            tokens: self.tokens.iter().filter(|(s, _)| timed(*s)).map(|(_, n)| n).sum(),
            loss_first: losses.first().copied(),
            loss_last: losses.last().copied(),
            peak_rss_mib: self.peak,
        }
    }
}

impl TrainObserver for StepClock {
    fn on_batch(&mut self, step: usize, batch: BatchInputs<'_>) {
        let (n, v) = match batch {
            BatchInputs::Ql(examples) => (
                examples.iter().map(|e| e.len()).sum(),
                serde_json::json!({
                    "step": step,
                    "examples": examples.iter().map(|e| serde_json::json!({"ids": e.input_ids, "sep": e.sep_pos})).collect::<Vec<_>>(),
                }),
            ),
            BatchInputs::Contrastive { queries, passages } => (
                queries.iter().chain(passages).map(Vec::len).sum(),
                serde_json::json!({"step": step, "queries": queries, "passages": passages}),
            ),
        };
        self.tokens.push((step, n));
        if let Some(d) = &mut self.dump {
            d.push(v);
        }
    }

    fn on_step(&mut self, step: usize) {
        self.ends.push((step, Instant::now()));
        if step == self.last {
            self.peak = peak_rss_mib();
        }
    }

    fn on_log(&mut self, entry: &LogEntry) {
        self.losses.push((entry.step, entry.loss));
    }
}

/// Runs one real training loop (`train`, given the run's scratch output and a [`StepClock`]) for
/// `steps` timed steps after one warm-up step, writes the dumped batches to `dump` when asked, and
/// returns the keys both training benchmarks report (`impl`, `steps`, `tokens`, `seconds`,
/// `tokens_per_s`, `step_seconds`, `threads`, `loss_first`, `loss_last`, `peak_rss_mib`) together with
/// the caller's own (`own`, a JSON object: its settings).
pub(crate) fn timed_training(
    what: &str,
    source: &llmql_core::model_source::SourceFiles,
    steps: usize,
    dump: Option<&std::path::Path>,
    own: serde_json::Value,
    train: impl FnOnce(&llmql_core::train::TrainRun<'_>, &mut StepClock) -> Result<()>,
) -> Result<serde_json::Value> {
    // A fresh, uniquely named scratch folder for the loop's final save, removed on drop.
    let scratch = tempfile::Builder::new().prefix(&format!("llmql-bench-{what}-")).tempdir()?;
    let mut clock = StepClock::new(steps + 1, dump.is_some());
    let run = llmql_core::train::TrainRun { source, out: scratch.path(), resume: false };
    train(&run, &mut clock)?;
    let s = clock.summary();
    if let (Some(path), Some(batches)) = (dump, &clock.dump) {
        write_jsonl(path, batches)?;
    }
    let serde_json::Value::Object(mut keys) = serde_json::json!({
        "impl": "llmql",
        "steps": s.steps,
        "tokens": s.tokens,
        "seconds": s.seconds,
        "tokens_per_s": s.tokens as f64 / s.seconds,
        "step_seconds": s.seconds / s.steps.max(1) as f64,
        "threads": rayon::current_num_threads(),
        "loss_first": s.loss_first,
        "loss_last": s.loss_last,
        "peak_rss_mib": s.peak_rss_mib,
    }) else {
        unreachable!("a JSON object")
    };
    if let serde_json::Value::Object(own) = own {
        keys.extend(own);
    }
    Ok(serde_json::Value::Object(keys))
}

/// Writes `dump` as JSON lines to `path` (atomically: a failed write leaves no partial dump).
pub(crate) fn write_jsonl(path: &std::path::Path, dump: &[serde_json::Value]) -> Result<()> {
    use std::io::Write;
    llmql_core::formats::write_atomic(path, |w| dump.iter().try_for_each(|v| writeln!(w, "{v}")))?;
    Ok(())
}
