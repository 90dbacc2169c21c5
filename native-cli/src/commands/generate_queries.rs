//! `llmql generate-queries`: training queries written by the QL model for a collection's passages
//! (see `llmql_core::ql::generate`), as BEIR queries and qrels (query -> its source passage), so
//! every other command takes them; and `llmql filter-queries`, the consistency filter
//! (`llmql_core::consistency`) over any retriever's run.
//!
//! Resumable: every finished chunk of passages is appended to a journal beside the output
//! (`.NAME.llmql-journal`, with the settings it was made with); a run that is stopped and started
//! again with the same settings skips the passages already done, and writes what an uninterrupted
//! run writes (each query is drawn from its own random stream). The outputs are written
//! atomically at the end, and the journal removed.
use super::input_settings::{self, QlLengthArgs, QlSettings};
use crate::progress::bar;
use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use llmql_core::bm25::{Bm25Index, Bm25Params};
use llmql_core::consistency::filter_consistent;
use llmql_core::formats::{read_text_records, resolve_text_path};
use llmql_core::model::LoadOptions;
use llmql_core::ql::example::passage_text;
use llmql_core::ql::{d2q_prompt, generate, GenerateOptions, Request, Sampling};
use llmql_core::records::TextRecord;
use llmql_core::trec::{read_qrels, read_run, write_qrels, Qrels, Run};
use llmql_core::truncation::TruncationStats;
use llmql_core::ModelSource;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// How the consistency filter is asked for, shared by `generate-queries` and the quickstart.
#[derive(Args, Debug, Clone)]
pub struct FilterArgs {
    /// Consistency filter: keep a generated query only if BM25 over the corpus ranks its source
    /// passage within the top K (0: keep every query).
    #[arg(long, default_value_t = 0)]
    pub filter_top_k: usize,
}

#[derive(Args, Debug, Clone)]
pub struct GenerateQueriesArgs {
    /// The query generator: the stage-1 model (`llmql ql-train` output) or any decoder (HF folder,
    /// .gguf file or hub id).
    #[arg(long)]
    pub model: PathBuf,
    /// A PEFT LoRA adapter applied on top of --model (either PEFT layout).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// The passages: JSON lines (`_id`, `text`, optional `title`), tsv, or a BEIR folder.
    #[arg(long)]
    pub corpus: PathBuf,
    /// The generated queries (BEIR queries.jsonl: `_id`, `text`).
    #[arg(long)]
    pub output: PathBuf,
    /// Their qrels (BEIR tsv: generated query -> its source passage, grade 1). Default: beside
    /// --output, `NAME.qrels.tsv` for `NAME.jsonl`.
    #[arg(long)]
    pub qrels_output: Option<PathBuf>,
    /// Queries per passage (more than 1 needs --sampling top-p).
    #[arg(long, default_value_t = 1)]
    pub per_passage: usize,
    /// Generate for at most this many passages, a seeded choice (0: every passage).
    #[arg(long, default_value_t = 0)]
    pub max_passages: usize,
    /// greedy (the most likely token) or top-p (nucleus sampling).
    #[arg(long, default_value = "greedy", value_parser = ["greedy", "top-p"])]
    pub sampling: String,
    /// Nucleus size for --sampling top-p.
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Softmax temperature for --sampling top-p.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Most tokens per query, the closing EOS included.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Forbid repeating an n-gram of the query being written (0: off).
    #[arg(long, default_value_t = 3)]
    pub no_repeat_ngram: usize,
    /// Attention of the query tokens: `stop` (Attention Stop: the query sees the passage only
    /// through the separator, as stage 1 trains it) or `causal` (the whole passage, as a decoder
    /// generates zero-shot).
    #[arg(long, default_value = "causal", value_parser = ["stop", "causal"])]
    pub attention: String,
    /// Longest passage prompt, in tokens (instruction, passage and suffix, with BOS). Default: the
    /// length the model was trained with (its llmql.json, written by `llmql ql-train`), else 200.
    #[arg(long)]
    pub p_max_len: Option<usize>,
    #[command(flatten)]
    pub truncation: super::TruncationArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Prefix of the generated query ids (`PREFIX{docid}-{n}`).
    #[arg(long, default_value = "gen-")]
    pub id_prefix: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

impl GenerateQueriesArgs {
    fn sampling(&self) -> Result<Sampling> {
        let s = match self.sampling.as_str() {
            "greedy" => Sampling::Greedy,
            _ => Sampling::TopP { top_p: self.top_p, temperature: self.temperature },
        };
        s.validate().map_err(|e| anyhow::anyhow!("--top-p / --temperature: {e}"))?;
        Ok(s)
    }

    /// Checks the flags before any work (a refusal costs nothing).
    fn validate(&self) -> Result<()> {
        self.sampling()?;
        if self.per_passage == 0 {
            bail!("--per-passage must be at least 1");
        }
        if self.per_passage > 1 && self.sampling == "greedy" {
            bail!(
                "--per-passage {} with --sampling greedy would write the same query {} times: use --sampling top-p",
                self.per_passage,
                self.per_passage
            );
        }
        if self.max_new_tokens < 2 {
            bail!("--max-new-tokens must be at least 2 (a query token and the closing EOS)");
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        llmql_core::records::check_id(&format!("{}x", self.id_prefix))
            .map_err(|m| anyhow::anyhow!("--id-prefix {:?}: {m}", self.id_prefix))?;
        super::parse_dtype(&self.dtype)?;
        Ok(())
    }

    fn qrels_path(&self) -> PathBuf {
        self.qrels_output.clone().unwrap_or_else(|| sibling(&self.output, "qrels.tsv"))
    }

    /// The prompt's length limit and truncation: the flags, else the generator's record, else the
    /// defaults.
    fn prompt_settings(&self) -> Result<QlSettings> {
        let lengths = QlLengthArgs { p_max_len: self.p_max_len, q_max_len: None, truncation: self.truncation };
        let sources = input_settings::trained_with(&self.model, self.adapter.as_deref())?;
        input_settings::resolve_ql("generate-queries", &lengths, &sources)
    }

    fn options(&self, prompt: &QlSettings) -> Result<GenerateOptions> {
        Ok(GenerateOptions {
            p_max_len: prompt.p_max_len,
            truncation: prompt.truncation,
            max_new_tokens: self.max_new_tokens,
            batch_size: self.batch_size,
            attention_stop: self.attention == "stop",
            sampling: self.sampling()?,
            seed: self.seed,
            kv_cache: true,
            no_repeat_ngram: self.no_repeat_ngram,
        })
    }

    /// Everything that decides what is generated: a journal made with other settings is not resumed.
    fn fingerprint(&self, corpus: &Path, prompt: &QlSettings) -> String {
        let corpus_len = std::fs::metadata(corpus).map(|m| m.len()).unwrap_or(0);
        format!(
            "model={} adapter={:?} corpus={} ({corpus_len} bytes) per_passage={} max_passages={} sampling={} top_p={} \
             temperature={} max_new_tokens={} no_repeat_ngram={} attention={} p_max_len={} truncation={} seed={}",
            self.model.display(),
            self.adapter,
            corpus.display(),
            self.per_passage,
            self.max_passages,
            self.sampling,
            self.top_p,
            self.temperature,
            self.max_new_tokens,
            self.no_repeat_ngram,
            self.attention,
            prompt.p_max_len,
            prompt.truncation.name(),
            self.seed
        )
    }
}

/// `dir/STEM.ext` beside `path` (`STEM` = its name without `.jsonl`).
fn sibling(path: &Path, ext: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "queries".into());
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    llmql_core::output::parent_of(path).join(format!("{stem}.{ext}"))
}

/// The passages to generate for, in corpus order: all, or a seeded choice of `max` of them.
fn chosen_passages(corpus: &[TextRecord], max: usize, seed: u64) -> Vec<usize> {
    if max == 0 || max >= corpus.len() {
        return (0..corpus.len()).collect();
    }
    let mut picked: Vec<usize> =
        llmql_core::train::common::epoch_order(seed ^ 0x6765_6E71, 0, corpus.len()).into_iter().take(max).collect();
    picked.sort_unstable();
    picked
}

/// One generated query, as the journal keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JournalQuery {
    text: String,
    finished: bool,
    tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JournalEntry {
    docid: String,
    queries: Vec<JournalQuery>,
}

/// The journal of a run in progress: its first line is the settings' fingerprint, then one entry
/// per finished passage.
struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

impl Journal {
    /// Opens (resuming when the fingerprint matches) or starts the journal; returns the entries
    /// already done. A torn last line (a killed write) is dropped.
    fn open(output: &Path, fingerprint: &str) -> Result<(Self, HashMap<String, Vec<JournalQuery>>)> {
        let name = output.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let path = llmql_core::output::parent_of(output).join(format!(".{name}.llmql-journal"));
        let mut done = HashMap::new();
        let mut good_bytes = 0u64;
        let mut resumed = false;
        if let Ok(f) = std::fs::File::open(&path) {
            let mut lines = std::io::BufReader::new(f).lines();
            let header_ok = matches!(lines.next(), Some(Ok(h)) if h == fingerprint);
            if header_ok {
                resumed = true;
                good_bytes = fingerprint.len() as u64 + 1;
                for line in lines {
                    let Ok(line) = line else { break };
                    let Ok(e) = serde_json::from_str::<JournalEntry>(&line) else { break };
                    good_bytes += line.len() as u64 + 1;
                    done.insert(e.docid, e.queries);
                }
            } else {
                tracing::info!("{}: made with other settings; starting over", path.display());
            }
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        }
        let file = if resumed {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .with_context(|| format!("{}: cannot open", path.display()))?;
            f.set_len(good_bytes).with_context(|| format!("{}: cannot truncate", path.display()))?;
            let mut f = f;
            use std::io::Seek;
            f.seek(std::io::SeekFrom::End(0))?;
            tracing::info!("resuming: {} passages already done ({})", done.len(), path.display());
            f
        } else {
            let mut f = std::fs::File::create(&path).with_context(|| format!("{}: cannot create", path.display()))?;
            writeln!(f, "{fingerprint}")?;
            f
        };
        Ok((Self { path, file }, done))
    }

    fn append(&mut self, entries: &[JournalEntry]) -> Result<()> {
        let mut buf = String::new();
        for e in entries {
            buf.push_str(&serde_json::to_string(e)?);
            buf.push('\n');
        }
        self.file.write_all(buf.as_bytes()).with_context(|| format!("{}: cannot write", self.path.display()))?;
        self.file.sync_data().with_context(|| format!("{}: cannot sync", self.path.display()))?;
        Ok(())
    }
}

/// Passages per journal chunk (a few batches per worker thread).
const CHUNK_BATCHES: usize = 8;

struct Task {
    a: GenerateQueriesArgs,
    prompt: QlSettings,
    ckpt: ModelSource,
    /// (docid, passage text) still to do.
    todo: Vec<(String, String)>,
    journal: Journal,
    total: usize,
    done_before: usize,
}

/// What generation produced, for the report.
struct Generation {
    entries: Vec<JournalEntry>,
    seconds: f64,
    tokens: usize,
    queries: usize,
}

impl BackendTask for Task {
    type Output = Result<Generation>;
    fn run<B: Backend>(mut self, device: B::Device) -> Result<Generation> {
        let a = &self.a;
        let dtype = super::parse_dtype(&a.dtype)?;
        let mut model =
            self.ckpt.load_model::<B>(LoadOptions { dtype, lm_head: true, ..Default::default() }, &device)?;
        if let Some(ad) = &a.adapter {
            model = llmql_core::lora::load_adapter(model, ad)?;
        }
        let tok = &self.ckpt.tokenizer;
        let opts = a.options(&self.prompt)?;
        let stats = TruncationStats::default();
        let pb = bar(self.total as u64, "generating (passages)");
        pb.inc(self.done_before as u64);
        let start = std::time::Instant::now();
        let (mut tokens, mut queries) = (0usize, 0usize);
        let mut entries = Vec::new();
        let chunk = opts.batch_size * CHUNK_BATCHES * rayon::current_num_threads().max(1);
        let abort_after: Option<usize> =
            std::env::var("LLMQL_TEST_ABORT_AFTER_CHUNK").ok().and_then(|v| v.parse().ok());
        let mut chunks_done = 0;
        for part in self.todo.chunks(chunk) {
            let mut requests = Vec::with_capacity(part.len() * a.per_passage);
            for (docid, text) in part {
                let prompt = d2q_prompt(tok, text, opts.p_max_len, opts.truncation, &stats)?;
                for j in 0..a.per_passage {
                    let key = llmql_core::train::common::mix(fnv(docid), j as u64);
                    requests.push(Request { prompt: prompt.clone(), key });
                }
            }
            let out = generate(&model, tok.eos_id, &requests, &opts, |n| pb.inc((n / a.per_passage) as u64))?;
            let mut part_entries = Vec::with_capacity(part.len());
            for ((docid, _), gens) in part.iter().zip(out.chunks(a.per_passage)) {
                let qs = gens
                    .iter()
                    .map(|g| {
                        tokens += g.ids.len() + usize::from(g.finished);
                        queries += 1;
                        let text = tok.tokenizer.decode(&g.ids, true).map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
                        Ok(JournalQuery { text: text.trim().to_string(), finished: g.finished, tokens: g.ids.len() })
                    })
                    .collect::<Result<Vec<_>>>()?;
                part_entries.push(JournalEntry { docid: docid.clone(), queries: qs });
            }
            self.journal.append(&part_entries)?;
            entries.extend(part_entries);
            chunks_done += 1;
            // Test hook: abort the process with no cleanup at all (like SIGKILL) after this many chunks.
            if abort_after == Some(chunks_done) {
                std::process::abort();
            }
        }
        pb.finish_and_clear();
        stats.log(&format!("passage prompts (max {} tokens, {} truncation)", opts.p_max_len, opts.truncation.name()));
        Ok(Generation { entries, seconds: start.elapsed().as_secs_f64(), tokens, queries })
    }
}

/// A stable 64-bit hash of an id (FNV-1a): the key of its random streams.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Generated queries in corpus order, with their ids: `(query id, docid, text)`. Empty queries and
/// repeats of the same passage's earlier query are left out (counted).
fn assemble(
    order: &[String],
    done: &HashMap<String, Vec<JournalQuery>>,
    prefix: &str,
) -> (Vec<(String, String, String)>, usize, usize) {
    let (mut out, mut empty, mut repeated) = (Vec::new(), 0, 0);
    for docid in order {
        let mut seen = std::collections::HashSet::new();
        for (j, q) in done[docid].iter().enumerate() {
            if q.text.is_empty() {
                empty += 1;
            } else if !seen.insert(q.text.clone()) {
                repeated += 1;
            } else {
                out.push((format!("{prefix}{docid}-{j}"), docid.clone(), q.text.clone()));
            }
        }
    }
    (out, empty, repeated)
}

/// BEIR qrels of generated queries: each to its source passage, grade 1.
fn source_qrels(queries: &[(String, String, String)]) -> Qrels {
    let mut qrels = Qrels::new();
    for (qid, docid, _) in queries {
        qrels.entry(qid.clone()).or_default().insert(docid.clone(), 1);
    }
    qrels
}

/// BM25 (the `llmql bm25` defaults) over `corpus` for `queries`, top `depth`.
pub fn bm25_run(corpus: &[TextRecord], queries: &[TextRecord], depth: usize) -> Result<Run> {
    let index = Bm25Index::build_in_ram(corpus, super::bm25::analyzer_from_flags(false, false))?;
    Ok(index.search_all(queries, depth, Bm25Params { k1: 0.9, b: 0.4 }, &|| {})?)
}

/// Writes queries (BEIR jsonl) and their qrels atomically.
fn write_queries(path: &Path, qrels_path: &Path, queries: &[(String, String, String)]) -> Result<()> {
    llmql_core::output::write_atomic(path, |w| {
        for (qid, _, text) in queries {
            writeln!(w, "{}", serde_json::json!({"_id": qid, "text": text}))?;
        }
        Ok(())
    })?;
    write_qrels(qrels_path, &source_qrels(queries))?;
    Ok(())
}

pub fn run(a: GenerateQueriesArgs) -> Result<()> {
    a.validate()?;
    let prompt = a.prompt_settings()?;
    let device: DeviceSpec = a.device.parse()?;
    let corpus_path = resolve_text_path(&a.corpus, "corpus.jsonl");
    let corpus = read_text_records(&corpus_path)?;
    if corpus.is_empty() {
        bail!("{}: no passages", corpus_path.display());
    }
    let chosen = chosen_passages(&corpus, a.max_passages, a.seed);
    let fingerprint = a.fingerprint(&corpus_path, &prompt);
    let (journal, mut done) = Journal::open(&a.output, &fingerprint)?;
    let order: Vec<String> = chosen.iter().map(|&i| corpus[i].id.clone()).collect();
    let todo: Vec<(String, String)> = chosen
        .iter()
        .filter(|&&i| !done.contains_key(&corpus[i].id))
        .map(|&i| (corpus[i].id.clone(), passage_text(corpus[i].title.as_deref(), &corpus[i].text)))
        .collect();
    tracing::info!(
        "generating {} queries each for {} of {} passages ({} done before) with {} ({} attention, {})",
        a.per_passage,
        chosen.len(),
        corpus.len(),
        chosen.len() - todo.len(),
        a.model.display(),
        a.attention,
        a.sampling
    );
    let journal_path = journal.path.clone();
    let ckpt = ModelSource::open(&a.model).context("loading the model")?;
    let done_before = chosen.len() - todo.len();
    let g = run_on(&device, Task { a: a.clone(), prompt, ckpt, todo, journal, total: chosen.len(), done_before })??;
    let unfinished = g.entries.iter().flat_map(|e| &e.queries).filter(|q| !q.finished).count();
    for e in g.entries {
        done.insert(e.docid, e.queries);
    }
    if g.queries > 0 {
        tracing::info!(
            "generated {} queries in {:.1}s ({:.2} queries/s, {:.1} tokens/s); {unfinished} reached --max-new-tokens {}",
            g.queries,
            g.seconds,
            g.queries as f64 / g.seconds.max(1e-9),
            g.tokens as f64 / g.seconds.max(1e-9),
            a.max_new_tokens
        );
    }
    let (mut queries, empty, repeated) = assemble(&order, &done, &a.id_prefix);
    if empty + repeated > 0 {
        tracing::info!("left out {empty} empty queries and {repeated} repeats of a passage's earlier query");
    }
    let generated = queries.len();
    if a.filter.filter_top_k > 0 {
        let records: Vec<TextRecord> = queries
            .iter()
            .map(|(id, _, text)| TextRecord { id: id.clone(), title: None, text: text.clone() })
            .collect();
        let run = bm25_run(&corpus, &records, a.filter.filter_top_k)?;
        let outcome = filter_consistent(&source_qrels(&queries), &[&run], a.filter.filter_top_k);
        tracing::info!(
            "consistency filter (source passage in BM25's top {}): kept {} of {} queries ({:.1}%)",
            a.filter.filter_top_k,
            outcome.kept.len(),
            outcome.total,
            100.0 * outcome.kept.len() as f64 / outcome.total.max(1) as f64
        );
        queries.retain(|(qid, _, _)| outcome.kept.contains(qid));
    }
    if queries.is_empty() {
        tracing::warn!("no query is left to write (generated {generated}; see the log above): writing empty files");
    }
    let qrels_path = a.qrels_path();
    write_queries(&a.output, &qrels_path, &queries)?;
    let _ = std::fs::remove_file(&journal_path);
    tracing::info!(
        "wrote {} queries to {} and their qrels to {}",
        queries.len(),
        a.output.display(),
        qrels_path.display()
    );
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct FilterQueriesArgs {
    /// The queries to filter (JSON lines or tsv).
    #[arg(long)]
    pub queries: PathBuf,
    /// Their source passages (qrels, TREC or BEIR tsv).
    #[arg(long)]
    pub qrels: PathBuf,
    /// Runs of those queries (TREC), e.g. `llmql bm25` and a dense `llmql search`; comma-separated.
    /// A query is kept when every run ranks one of its judged passages within the top K.
    #[arg(long, value_delimiter = ',', required = true)]
    pub run: Vec<PathBuf>,
    #[arg(long)]
    pub top_k: usize,
    /// The kept queries.
    #[arg(long)]
    pub output: PathBuf,
    /// Their qrels (default: beside --output, `NAME.qrels.tsv`).
    #[arg(long)]
    pub qrels_output: Option<PathBuf>,
}

pub fn run_filter(a: FilterQueriesArgs) -> Result<()> {
    if a.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let queries = read_text_records(&a.queries)?;
    let qrels = read_qrels(&a.qrels)?;
    let runs = a.run.iter().map(|p| read_run(p).map_err(anyhow::Error::from)).collect::<Result<Vec<_>>>()?;
    let outcome = filter_consistent(&qrels, &runs.iter().collect::<Vec<_>>(), a.top_k);
    let kept: Vec<(String, String, String)> = queries
        .iter()
        .filter(|q| outcome.kept.contains(&q.id))
        .flat_map(|q| {
            qrels[&q.id].iter().filter(|(_, &g)| g > 0).map(|(d, _)| (q.id.clone(), d.clone(), q.text.clone()))
        })
        .collect();
    let kept_queries: BTreeMap<&str, ()> = kept.iter().map(|(q, _, _)| (q.as_str(), ())).collect();
    tracing::info!(
        "consistency filter (a judged passage in the top {} of {} run(s)): kept {} of {} judged queries",
        a.top_k,
        runs.len(),
        kept_queries.len(),
        outcome.total
    );
    if kept.is_empty() {
        bail!("no query of {} passed the filter", a.queries.display());
    }
    let qrels_path = a.qrels_output.clone().unwrap_or_else(|| sibling(&a.output, "qrels.tsv"));
    llmql_core::output::write_atomic(&a.output, |w| {
        for q in queries.iter().filter(|q| outcome.kept.contains(&q.id)) {
            writeln!(w, "{}", serde_json::json!({"_id": q.id, "text": q.text}))?;
        }
        Ok(())
    })?;
    write_qrels(&qrels_path, &source_qrels(&kept))?;
    tracing::info!("wrote {} and {}", a.output.display(), qrels_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_choice_of_passages_in_corpus_order() {
        let corpus: Vec<TextRecord> =
            (0..50).map(|i| TextRecord { id: format!("d{i}"), title: None, text: "x".into() }).collect();
        assert_eq!(chosen_passages(&corpus, 0, 1).len(), 50);
        let c = chosen_passages(&corpus, 10, 1);
        assert_eq!(c.len(), 10);
        assert!(c.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(c, chosen_passages(&corpus, 10, 1));
        assert_ne!(c, chosen_passages(&corpus, 10, 2));
        assert_eq!(sibling(Path::new("out/gen.jsonl"), "qrels.tsv"), PathBuf::from("out/gen.qrels.tsv"));
    }
}
