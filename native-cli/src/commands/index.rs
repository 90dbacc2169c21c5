//! `llmql index`: a search index (`llmql_core::index`) from an `llmql encode --kind passage`
//! output (all shards), for `llmql search --corpus IDX` and `llmql serve --index IDX`; or, with
//! `--db`, a vector database table (`llmql_core::index::db`) for `search`/`serve --db`.
use crate::progress::bar;
use anyhow::{bail, Result};
use clap::Args;
use llmql_core::index::db::{DbTarget, DbWriteOptions, DEFAULT_TABLE};
use llmql_core::index::{build, BuildOptions, IndexKind, SearchEffort};
use std::path::PathBuf;
use std::sync::Arc;

/// `--db` and `--table`, shared by the commands that write or search a database table.
#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// A vector database table instead of an index folder: `lancedb:PATH_OR_URI` (an embedded
    /// LanceDB: a local folder, or an object-store URI) or `qdrant:http://HOST:6334` (a Qdrant
    /// server; API key from QDRANT_API_KEY). See README "Vector databases".
    #[arg(long)]
    pub db: Option<String>,
    /// The table (collection) in --db.
    #[arg(long, default_value = DEFAULT_TABLE, requires = "db")]
    pub table: String,
}

impl DbArgs {
    /// The table, when `--db` is given (checked).
    pub fn resolve(&self) -> Result<Option<DbTarget>> {
        match &self.db {
            None => Ok(None),
            Some(db) => Ok(Some(DbTarget::parse(db, &self.table).map_err(anyhow::Error::msg)?)),
        }
    }
}

/// `--nprobe` and `--ef-search`, shared by the commands that search an approximate index.
#[derive(Args, Debug, Clone, Copy)]
pub struct SearchEffortArgs {
    /// IVF indexes: cells scanned per search. Larger is slower and closer to exact search.
    /// Default: the value the index was built with.
    #[arg(long)]
    pub nprobe: Option<usize>,
    /// HNSW indexes: candidates kept per search (at least the results asked for). Larger is slower
    /// and closer to exact search. Default: the value the index was built with.
    #[arg(long)]
    pub ef_search: Option<usize>,
}

impl SearchEffortArgs {
    /// The effort, refusing 0.
    pub fn resolve(&self) -> Result<SearchEffort> {
        if self.nprobe == Some(0) || self.ef_search == Some(0) {
            bail!("--nprobe and --ef-search must be at least 1");
        }
        Ok(SearchEffort { ef_search: self.ef_search, nprobe: self.nprobe })
    }
}

#[derive(Args, Debug, Clone)]
pub struct IndexArgs {
    /// Folder written by `llmql encode --kind passage` (every shard in it is indexed).
    #[arg(long)]
    pub corpus: PathBuf,
    /// Index folder to write (replaced only when llmql wrote it). Or give --db.
    #[arg(long, required_unless_present = "db", conflicts_with = "db")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    /// With --db: passage texts (JSON lines: `_id`, `text`, optional `title`, e.g. a BEIR
    /// corpus.jsonl) stored in the table beside the vectors, so `serve --db` returns them.
    #[arg(long, requires = "db")]
    pub passages: Option<PathBuf>,
    /// flat: exact search, every passage scored (the default; a query costs a pass over the corpus);
    /// ivf: approximate, k-means cells scanned as int8 codes then re-scored exactly (millisecond
    /// queries on millions of passages with recall@10 >= 0.95 at its defaults; 1 byte per dimension
    /// in memory); hnsw: approximate graph search (see README "Indexes").
    #[arg(long, default_value = "flat", value_parser = parse_kind)]
    pub kind: IndexKind,
    /// IVF: k-means cells (default: 2 x sqrt(passages)).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    pub ivf_lists: usize,
    /// IVF: default cells scanned per search, stored in the index (default: 1/64 of the cells, or
    /// enough to scan 8192 passages); searches may override it with --nprobe.
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    pub default_nprobe: usize,
    /// IVF: candidates re-scored with the exact f32 vectors (default 200; at least the results asked for).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    pub rescore: usize,
    /// IVF: seed of the k-means sample and start.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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
    let opts = BuildOptions {
        kind: a.kind,
        m: a.hnsw_m,
        ef_construction: a.ef_construction,
        ef_search: a.default_ef_search,
        lists: a.ivf_lists,
        nprobe: a.default_nprobe,
        rescore: a.rescore,
        seed: a.seed,
    };
    if a.kind == IndexKind::Hnsw {
        if !(2..=255).contains(&a.hnsw_m) {
            bail!("--hnsw-m must be in 2..=255");
        }
        if a.ef_construction == 0 || a.default_ef_search == 0 {
            bail!("--ef-construction and --default-ef-search must be at least 1");
        }
    }
    let start = std::time::Instant::now();
    let pb = Arc::new(bar(0, "indexing"));
    let (meta, into) = match (a.db.resolve()?, &a.output) {
        (Some(target), _) => {
            let o = DbWriteOptions {
                kind: a.kind,
                lists: a.ivf_lists,
                nprobe: a.default_nprobe,
                rescore: a.rescore,
                hnsw_m: a.hnsw_m,
                ef_construction: a.ef_construction,
                ef_search: a.default_ef_search,
                passages: a.passages.clone(),
            };
            let p = pb.clone();
            let progress = Arc::new(move |done: usize, total: usize| {
                p.set_length(total as u64);
                p.set_position(done as u64);
            });
            (llmql_core::index::db::write(&target, &a.corpus, &o, progress)?, target.label())
        }
        (None, Some(out)) => {
            let meta = build(&a.corpus, out, &opts, &mut |done, total| {
                pb.set_length(total as u64);
                pb.set_position(done as u64);
            })?;
            (meta, out.display().to_string())
        }
        (None, None) => bail!("give --output or --db"),
    };
    pb.finish_and_clear();
    tracing::info!(
        "indexed {} passages ({} dims, {}) in {:.1}s into {into}",
        meta.count,
        meta.dim,
        meta.kind.name(),
        start.elapsed().as_secs_f64(),
    );
    Ok(())
}
