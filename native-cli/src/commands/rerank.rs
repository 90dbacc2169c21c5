//! `llmql rerank`: rerank a run's top-K by LLM-QL query likelihood: the summed natural-log
//! probability of the query tokens and the closing EOS given the (uncorrupted) document prompt and
//! separator, under the Attention Stop mask (`--attention stop`, the default) or with plain causal
//! attention (`--attention causal`).
use crate::progress::bar;
use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use llmql_core::formats::open_text_records;
use llmql_core::model::LoadOptions;
use llmql_core::ql::example::passage_text;
use llmql_core::ql::{ql_scores, QlScoreOptions};
use llmql_core::trec::{read_run, write_run, Run, RunEntry};
use llmql_core::ModelSource;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct RerankArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Queries (.jsonl with _id/text, or .tsv id<TAB>text).
    #[arg(long)]
    pub queries: PathBuf,
    /// Corpus (.jsonl with _id/title/text, or .tsv id<TAB>text).
    #[arg(long)]
    pub corpus: PathBuf,
    /// The run to rerank (TREC format).
    #[arg(long)]
    pub run: PathBuf,
    /// Rerank each query's top K; documents below K are dropped.
    #[arg(long, default_value_t = 100)]
    pub depth: usize,
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[command(flatten)]
    pub lengths: super::input_settings::QlLengthArgs,
    /// Attention of the query tokens: `stop` (Attention Stop, LLM-QL's QL ranking: the query sees
    /// the document only through its separator) or `causal` (the whole document, as zero-shot LLM
    /// rerankers score).
    #[arg(long, default_value = "stop", value_parser = ["stop", "causal"])]
    pub attention: String,
    /// The same as `--attention causal` (kept for scripts that use it).
    #[arg(long, conflicts_with = "attention")]
    pub no_attention_stop: bool,
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    #[arg(long, default_value = "llmql-ql")]
    pub tag: String,
}

impl RerankArgs {
    pub fn attention_stop(&self) -> bool {
        self.attention == "stop" && !self.no_attention_stop
    }
}

struct Task {
    a: RerankArgs,
    ckpt: ModelSource,
    ql: super::input_settings::QlSettings,
    /// (qid, docid, passage text, query text)
    pairs: Vec<(String, String, String, String)>,
}

impl BackendTask for Task {
    type Output = Result<Run>;
    fn run<B: Backend>(self, device: B::Device) -> Result<Run> {
        let dtype = super::parse_dtype(&self.a.dtype)?;
        let model = self.ckpt.load_model::<B>(
            LoadOptions { dtype, lm_head: true, host_embeddings: false, compute_dtype: None },
            &device,
        )?;
        let pb = bar(self.pairs.len() as u64, "QL scoring");
        let texts: Vec<(String, String)> = self.pairs.iter().map(|(_, _, p, q)| (p.clone(), q.clone())).collect();
        let opts = QlScoreOptions {
            p_max_len: self.ql.p_max_len,
            q_max_len: self.ql.q_max_len,
            truncation: self.ql.truncation,
            batch_size: self.a.batch_size,
            attention_stop: self.a.attention_stop(),
        };
        let scores = ql_scores(&model, &self.ckpt.tokenizer, &texts, opts, |n| pb.inc(n as u64))?;
        pb.finish_and_clear();
        let mut run = Run::new();
        for ((qid, docid, _, _), s) in self.pairs.into_iter().zip(scores) {
            run.entry(qid).or_default().push(RunEntry { docid, score: s });
        }
        Ok(run)
    }
}

pub fn run(a: RerankArgs) -> Result<()> {
    let device: DeviceSpec = a.device.parse()?;
    if a.depth == 0 {
        bail!("--depth must be at least 1");
    }
    let input = read_run(&a.run)?;
    let mut top: Vec<(String, Vec<String>)> = Vec::new();
    let mut needed: HashSet<String> = HashSet::new();
    for (q, mut entries) in input {
        llmql_core::trec::sort_entries(&mut entries);
        entries.truncate(a.depth);
        let docs: Vec<String> = entries.into_iter().map(|e| e.docid).collect();
        needed.extend(docs.iter().cloned());
        top.push((q, docs));
    }
    let mut queries: HashMap<String, String> = HashMap::new();
    for r in open_text_records(&a.queries)? {
        let r = r?;
        queries.insert(r.id, r.text);
    }
    // Stream the corpus, keeping only the documents the run needs.
    let mut docs: HashMap<String, String> = HashMap::new();
    for r in open_text_records(&a.corpus)? {
        let r = r?;
        if needed.contains(&r.id) {
            docs.insert(r.id.clone(), passage_text(r.title.as_deref(), &r.text));
        }
    }
    let mut pairs = Vec::new();
    for (q, ds) in top {
        let Some(qtext) = queries.get(&q) else {
            bail!("{}: query {q:?} of the run is not in {}", a.run.display(), a.queries.display());
        };
        for d in ds {
            let Some(p) = docs.get(&d) else {
                bail!("{}: document {d:?} of the run is not in {}", a.run.display(), a.corpus.display());
            };
            pairs.push((q.clone(), d, p.clone(), qtext.clone()));
        }
    }
    let ckpt = ModelSource::open(&a.model).context("loading the model")?;
    let sources = super::input_settings::trained_with(&ckpt.dir, None)?;
    let ql = super::input_settings::resolve_ql("rerank", &a.lengths, &sources)?;
    let output = a.output.clone();
    let tag = a.tag.clone();
    let n = pairs.len();
    let start = std::time::Instant::now();
    let run = run_on(&device, Task { a, ckpt, ql, pairs })??;
    write_run(&output, &run, &tag)?;
    tracing::info!("scored {n} pairs in {:.1}s; wrote {}", start.elapsed().as_secs_f64(), output.display());
    Ok(())
}
