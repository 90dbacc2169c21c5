//! `llmql bm25`: a BM25 run over a corpus (tantivy index, Anserini-style k1/b; see
//! `llmql_core::bm25` for the formula and the analyzer).
use crate::progress::bar;
use anyhow::{Context, Result};
use clap::Args;
use llmql_core::bm25::{Analyzer, AnalyzerOptions, Bm25Builder, Bm25Params};
use llmql_core::formats::{open_text_records, read_text_records, resolve_text_path};
use llmql_core::records::TextRecord;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct Bm25Args {
    /// Corpus: JSON lines (`_id`/`id`, `text`, optional `title`; BEIR corpus.jsonl), tsv
    /// `pid<TAB>text` (MS MARCO collection.tsv), or a BEIR folder (its corpus.jsonl).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Queries: JSON lines, tsv `qid<TAB>text`, or a BEIR folder (its queries.jsonl).
    #[arg(long)]
    pub queries: PathBuf,
    /// Documents per query.
    #[arg(long, default_value_t = 1000)]
    pub depth: usize,
    /// The TREC run to write (`qid Q0 docid rank score tag`).
    #[arg(long)]
    pub output: PathBuf,
    /// BM25 term saturation.
    #[arg(long, default_value_t = 0.9)]
    pub k1: f64,
    /// BM25 length normalisation.
    #[arg(long, default_value_t = 0.4)]
    pub b: f64,
    /// Run tag (last column).
    #[arg(long, default_value = "bm25")]
    pub tag: String,
    /// Search only the queries judged in this qrels file (TREC or BEIR tsv), e.g. a BEIR split.
    #[arg(long)]
    pub qrels: Option<PathBuf>,
    /// Keep the index in memory instead of a temporary folder.
    #[arg(long)]
    pub in_memory: bool,
    /// Where to put the temporary index folder (default: the system's temporary folder).
    #[arg(long)]
    pub index_dir: Option<PathBuf>,
    /// Keep English stop words.
    #[arg(long)]
    pub no_stopwords: bool,
    /// Do not stem.
    #[arg(long)]
    pub no_stem: bool,
}

/// Lines in a file (for progress totals); cheap next to analysing them.
pub fn count_lines(path: &Path) -> Result<u64> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut n, mut last) = (0u64, b'\n');
    loop {
        let k = f.read(&mut buf).with_context(|| format!("{}: cannot read", path.display()))?;
        if k == 0 {
            break;
        }
        n += buf[..k].iter().filter(|&&c| c == b'\n').count() as u64;
        last = buf[k - 1];
    }
    Ok(n + u64::from(last != b'\n'))
}

pub fn analyzer_from_flags(no_stopwords: bool, no_stem: bool) -> Analyzer {
    Analyzer::new(AnalyzerOptions { stopwords: !no_stopwords, stem: !no_stem })
}

pub fn run(a: Bm25Args) -> Result<()> {
    let params = Bm25Params { k1: a.k1, b: a.b };
    params.validate()?;
    anyhow::ensure!(a.depth > 0, "--depth must be at least 1");
    let corpus_path = resolve_text_path(&a.corpus, "corpus.jsonl");
    let queries_path = resolve_text_path(&a.queries, "queries.jsonl");
    let mut queries = read_text_records(&queries_path)?;
    if let Some(q) = &a.qrels {
        let qrels = llmql_core::trec::read_qrels(q)?;
        queries.retain(|r| qrels.contains_key(&r.id));
        anyhow::ensure!(!queries.is_empty(), "no query of {} is judged in {}", queries_path.display(), q.display());
    }
    let analyzer = analyzer_from_flags(a.no_stopwords, a.no_stem);
    let mut builder = if a.in_memory {
        Bm25Builder::in_ram(analyzer)?
    } else {
        Bm25Builder::in_temp_dir(a.index_dir.as_deref(), analyzer)?
    };
    let pb = bar(count_lines(&corpus_path)?, "indexing");
    let mut batch: Vec<TextRecord> = Vec::with_capacity(BATCH);
    for r in open_text_records(&corpus_path)? {
        batch.push(r?);
        if batch.len() == BATCH {
            builder.add_batch(&batch)?;
            pb.inc(batch.len() as u64);
            batch.clear();
        }
    }
    builder.add_batch(&batch)?;
    pb.inc(batch.len() as u64);
    pb.finish_and_clear();
    anyhow::ensure!(!builder.is_empty(), "{}: no records: the file is empty", corpus_path.display());
    let index = builder.finish()?;
    tracing::info!(docs = index.num_docs(), avgdl = index.avgdl(), k1 = a.k1, b = a.b, "indexed");

    let pb = bar(queries.len() as u64, "searching");
    let run = index.search_all(&queries, a.depth, params, &|| pb.inc(1))?;
    pb.finish_and_clear();
    llmql_core::trec::write_run(&a.output, &run, &a.tag)?;
    tracing::info!(queries = run.len(), output = %a.output.display(), "wrote BM25 run");
    Ok(())
}

const BATCH: usize = 8192;
