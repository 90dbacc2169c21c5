//! `llmql rerank-dirichlet`: rerank the top of a run by word-based query likelihood with
//! Dirichlet smoothing (see `llmql_core::dirichlet`).
use super::bm25::{analyzer_from_flags, count_lines};
use crate::progress::bar;
use anyhow::Result;
use clap::Args;
use llmql_core::formats::{open_text_records, read_text_records, resolve_text_path};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DirichletArgs {
    /// Corpus: JSON lines, tsv `pid<TAB>text`, or a BEIR folder (streamed once).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Queries: JSON lines, tsv `qid<TAB>text`, or a BEIR folder. Must hold every query of the run.
    #[arg(long)]
    pub queries: PathBuf,
    /// The TREC run to rerank.
    #[arg(long)]
    pub run: PathBuf,
    /// Rerank this many top documents per query; the output holds only those.
    #[arg(long, default_value_t = 100)]
    pub depth: usize,
    /// Dirichlet prior.
    #[arg(long, default_value_t = llmql_core::dirichlet::DEFAULT_MU)]
    pub mu: f64,
    /// The reranked TREC run to write.
    #[arg(long)]
    pub output: PathBuf,
    /// Run tag (last column).
    #[arg(long, default_value = "ql-dirichlet")]
    pub tag: String,
    /// Keep English stop words.
    #[arg(long)]
    pub no_stopwords: bool,
    /// Do not stem.
    #[arg(long)]
    pub no_stem: bool,
}

pub fn run(a: DirichletArgs) -> Result<()> {
    anyhow::ensure!(a.depth > 0, "--depth must be at least 1");
    let corpus_path = resolve_text_path(&a.corpus, "corpus.jsonl");
    let queries = read_text_records(&resolve_text_path(&a.queries, "queries.jsonl"))?;
    let run = llmql_core::trec::read_run(&a.run)?;
    let analyzer = analyzer_from_flags(a.no_stopwords, a.no_stem);
    let pb = bar(count_lines(&corpus_path)?, "collection statistics");
    let out = llmql_core::dirichlet::rerank(
        open_text_records(&corpus_path)?,
        &queries,
        &run,
        a.depth,
        a.mu,
        &analyzer,
        &|| pb.inc(1),
    )?;
    pb.finish_and_clear();
    llmql_core::trec::write_run(&a.output, &out, &a.tag)?;
    tracing::info!(queries = out.len(), mu = a.mu, output = %a.output.display(), "wrote reranked run");
    Ok(())
}
