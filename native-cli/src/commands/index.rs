//! `llmql index`: a search index (`llmql_core::index`) from an `llmql encode --kind passage`
//! output (all shards), for `llmql search --corpus IDX` and `llmql serve --index IDX`.
use crate::progress::bar;
use anyhow::{bail, Result};
use clap::Args;
use llmql_core::index::{build, BuildOptions, IndexKind};
use std::path::PathBuf;

/// `--ef-search`, shared by the commands that search an HNSW index.
#[derive(Args, Debug, Clone, Copy)]
pub struct EfSearchArgs {
    /// HNSW indexes: candidates kept per search (at least the results asked for). Larger is slower
    /// and closer to exact search. Default: the value the index was built with.
    #[arg(long)]
    pub ef_search: Option<usize>,
}

#[derive(Args, Debug, Clone)]
pub struct IndexArgs {
    /// Folder written by `llmql encode --kind passage` (every shard in it is indexed).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Index folder to write (replaced only when llmql wrote it).
    #[arg(long)]
    pub output: PathBuf,
    /// flat: exact search, every passage scored (the default; best up to ~1M passages on a CPU
    /// when a query may take tens of ms); hnsw: approximate graph search (millisecond queries on
    /// millions of passages, recall below 1; see README "Indexes").
    #[arg(long, default_value = "flat", value_parser = parse_kind)]
    pub kind: IndexKind,
    /// HNSW: links per node (2x on the bottom layer); more links, better recall, more memory.
    #[arg(long, default_value_t = 16)]
    pub hnsw_m: usize,
    /// HNSW: candidates kept while linking each new passage (build time vs graph quality).
    #[arg(long, default_value_t = 100)]
    pub ef_construction: usize,
    /// HNSW: default candidates per search, stored in the index (searches may override it).
    #[arg(long, default_value_t = 64)]
    pub default_ef_search: usize,
}

fn parse_kind(s: &str) -> std::result::Result<IndexKind, String> {
    s.parse()
}

pub fn run(a: IndexArgs) -> Result<()> {
    let opts =
        BuildOptions { kind: a.kind, m: a.hnsw_m, ef_construction: a.ef_construction, ef_search: a.default_ef_search };
    if a.kind == IndexKind::Hnsw {
        if !(2..=255).contains(&a.hnsw_m) {
            bail!("--hnsw-m must be in 2..=255");
        }
        if a.ef_construction == 0 || a.default_ef_search == 0 {
            bail!("--ef-construction and --default-ef-search must be at least 1");
        }
    }
    let start = std::time::Instant::now();
    let pb = bar(0, "indexing");
    let meta = build(&a.corpus, &a.output, &opts, &mut |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    tracing::info!(
        "indexed {} passages ({} dims, {}) in {:.1}s into {}",
        meta.count,
        meta.dim,
        meta.kind.name(),
        start.elapsed().as_secs_f64(),
        a.output.display()
    );
    Ok(())
}
