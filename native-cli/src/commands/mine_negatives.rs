//! `llmql mine-negatives`: Tevatron training data with hard negatives from any run (BM25 or
//! dense), never a judged-relevant document (see `llmql_core::mining`).
use anyhow::Result;
use clap::Args;
use llmql_core::formats::{open_text_records, read_text_records, resolve_text_path, write_tevatron};
use llmql_core::mining::{mine, MiningOptions};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct MineNegativesArgs {
    /// Training queries: JSON lines or tsv `qid<TAB>text` (queries without a judged-relevant
    /// document in --qrels are skipped, so a BEIR queries.jsonl holding every split is fine).
    #[arg(long)]
    pub train_queries: PathBuf,
    /// Training qrels: TREC (`qid 0 docid rel`) or BEIR tsv. Relevant = grade > 0.
    #[arg(long)]
    pub qrels: PathBuf,
    /// The TREC run to take negatives from.
    #[arg(long)]
    pub run: PathBuf,
    /// Corpus (for titles and texts): JSON lines, tsv `pid<TAB>text`, or a BEIR folder.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Negatives come from ranks up to this.
    #[arg(long, default_value_t = 200)]
    pub depth: usize,
    /// Ranks 1..=skip-top are never used.
    #[arg(long, default_value_t = 0)]
    pub skip_top: usize,
    /// Negatives per query (at most).
    #[arg(long, default_value_t = 30)]
    pub count: usize,
    /// Tevatron JSON lines to write.
    #[arg(long)]
    pub output: PathBuf,
}

pub fn run(a: MineNegativesArgs) -> Result<()> {
    let opts = MiningOptions { depth: a.depth, skip_top: a.skip_top, count: a.count };
    opts.validate()?;
    let queries = read_text_records(&resolve_text_path(&a.train_queries, "queries.jsonl"))?;
    let qrels = llmql_core::trec::read_qrels(&a.qrels)?;
    let run = llmql_core::trec::read_run(&a.run)?;
    let corpus_path = resolve_text_path(&a.corpus, "corpus.jsonl");
    let (examples, stats) = mine(&queries, &qrels, &run, open_text_records(&corpus_path)?, &opts)?;
    if stats.missing_query_text > 0 {
        tracing::warn!("{} judged queries of the qrels are not in the queries file", stats.missing_query_text);
    }
    if stats.no_negative > 0 {
        tracing::warn!(
            "{} queries skipped: no negative left in the run (absent, or all candidates relevant)",
            stats.no_negative
        );
    }
    if stats.short > 0 {
        tracing::warn!("{} examples have fewer than {} negatives", stats.short, a.count);
    }
    anyhow::ensure!(!examples.is_empty(), "no training example: no query has both a positive and a negative");
    write_tevatron(&a.output, &examples)?;
    tracing::info!(examples = stats.examples, output = %a.output.display(), "wrote Tevatron training data");
    Ok(())
}
