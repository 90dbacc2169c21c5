//! `llmql search`: exact inner-product top-K of encoded queries over encoded corpus shards.
use crate::progress::bar;
use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use llmql_core::search::{find_shards, load_all, Embeddings, ExactSearch};
use llmql_core::trec::{write_run, Run};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct SearchArgs {
    /// Folder written by `llmql encode --kind query`.
    #[arg(long)]
    pub queries: PathBuf,
    /// Folder written by `llmql encode --kind passage` (all shards in it are searched exactly), or
    /// an `llmql index` folder (flat: exact on --device; ivf, hnsw: approximate, on the CPU).
    /// Or give --db.
    #[arg(long, required_unless_present = "db", conflicts_with = "db")]
    pub corpus: Option<PathBuf>,
    /// Or a vector database table written by `llmql index --db` (searched on the CPU).
    #[command(flatten)]
    pub db: super::index::DbArgs,
    /// Results per query.
    #[arg(long, default_value_t = 1000)]
    pub depth: usize,
    /// TREC run file to write (`qid Q0 docid rank score tag`).
    #[arg(long)]
    pub output: PathBuf,
    /// flex | cpu | wgpu | wgpu:N | cuda | cuda:N
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Run tag (last column).
    #[arg(long, default_value = "llmql")]
    pub tag: String,
    /// Corpus rows scored per matmul (bounds device memory).
    #[arg(long, default_value_t = 16384)]
    pub block_rows: usize,
    #[command(flatten)]
    pub effort: super::index::SearchEffortArgs,
}

/// Every query through an opened index: approximate, or a database table (queries in parallel).
fn search_index(
    index: &llmql_core::index::Index,
    queries: &Embeddings,
    depth: usize,
    effort: llmql_core::index::SearchEffort,
) -> Result<Run> {
    use rayon::prelude::*;
    if index.dim() != queries.dim {
        bail!("{}: the index has dimension {}, the queries {}", index.dir.display(), index.dim(), queries.dim);
    }
    (0..queries.rows())
        .into_par_iter()
        .map(|i| {
            let hits = index.search(queries.row(i), depth, effort)?;
            let entries =
                hits.into_iter().map(|(s, d)| llmql_core::trec::RunEntry { docid: d, score: s as f64 }).collect();
            Ok((queries.ids[i].clone(), entries))
        })
        .collect()
}

struct SearchTask {
    a: SearchArgs,
    corpus: PathBuf,
    queries: Embeddings,
}

impl BackendTask for SearchTask {
    type Output = Result<Run>;
    fn run<B: Backend>(self, device: B::Device) -> Result<Run> {
        let shards = find_shards(&self.corpus)?;
        let mut total = 0u64;
        for (_, ids) in &shards {
            let text = std::fs::read_to_string(ids).with_context(|| format!("{}: cannot read", ids.display()))?;
            total += text.lines().count() as u64;
        }
        let pb = bar(total, "searching");
        let mut s = ExactSearch::<B>::new(&self.queries, self.a.depth, &device);
        s.block_rows = self.a.block_rows;
        for (npy, ids) in shards {
            let shard = Embeddings::load(&npy, &ids)?;
            s.add(&shard).with_context(|| format!("{}", npy.display()))?;
            pb.inc(shard.rows() as u64);
        }
        pb.finish_and_clear();
        Ok(s.finish())
    }
}

pub fn run(a: SearchArgs) -> Result<()> {
    let device: DeviceSpec = a.device.parse()?;
    if a.depth == 0 {
        bail!("--depth must be at least 1");
    }
    let effort = a.effort.resolve()?;
    let queries = load_all(&a.queries)?;
    let start = std::time::Instant::now();
    let nq = queries.rows();
    let output = a.output.clone();
    let tag = a.tag.clone();
    let run = match (a.db.resolve()?, a.corpus.clone()) {
        (Some(target), _) => search_index(&llmql_core::index::Index::open_db(&target)?, &queries, a.depth, effort)?,
        (None, Some(corpus))
            if llmql_core::index::Index::is_index_dir(&corpus)
                && llmql_core::index::Index::open_meta(&corpus)?.kind != llmql_core::index::IndexKind::Flat =>
        {
            search_index(&llmql_core::index::Index::open(&corpus)?, &queries, a.depth, effort)?
        }
        (None, Some(corpus)) => run_on(&device, SearchTask { a, corpus, queries })??,
        (None, None) => bail!("give --corpus or --db"),
    };
    write_run(&output, &run, &tag)?;
    let secs = start.elapsed().as_secs_f64();
    tracing::info!(
        "searched {nq} queries in {secs:.2}s ({:.1} queries/s); wrote {}",
        nq as f64 / secs,
        output.display()
    );
    Ok(())
}
