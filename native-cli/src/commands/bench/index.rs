//! `llmql bench index`: exact (flat) versus approximate (HNSW) search on a synthetic corpus:
//! build time, recall@k of HNSW against exact search, queries/s of each, and memory.
//!
//! The corpus is clustered like real embeddings (uniformly random unit vectors in hundreds of
//! dimensions are the worst case for any graph index and unlike any encoder's output): `clusters`
//! random unit centres, each row a centre plus Gaussian noise of norm `noise`, L2-normalised;
//! queries are drawn the same way (with `noise 1`, a row's cosine to its centre is ~0.7 and to
//! another row of its cluster ~0.5). The ground truth is the exact top-k of
//! `llmql_core::search::ExactSearch` (what `llmql search` runs).
use super::peak_rss_mib;
use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use llmql_core::index::hnsw::{HnswIndex, HnswParams};
use llmql_core::search::{Embeddings, ExactSearch};
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct BenchIndexArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    #[arg(long, default_value_t = 576)]
    pub dim: usize,
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Cluster centres of the synthetic corpus (0: uniformly random unit vectors).
    #[arg(long, default_value_t = 1000)]
    pub clusters: usize,
    /// Norm of the Gaussian noise added to a centre.
    #[arg(long, default_value_t = 1.0)]
    pub noise: f32,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    #[arg(long, default_value_t = 16)]
    pub hnsw_m: usize,
    #[arg(long, default_value_t = 100)]
    pub ef_construction: usize,
    /// Search candidate counts to measure (comma-separated).
    #[arg(long, default_value = "16,32,64,128,256")]
    pub ef_search: String,
    /// Queries timed one at a time through the flat index (each scores every row).
    #[arg(long, default_value_t = 50)]
    pub flat_queries: usize,
    /// Also dump the graph into this folder and time reloading it (it is removed afterwards).
    #[arg(long)]
    pub save: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The process's current resident set (Linux `VmRSS`), in MiB.
pub(crate) fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A seeded stream of approximately standard normal numbers (Box-Muller over xorshift).
struct Gauss(u64);

impl Gauss {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03 | 1)
    }
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn next(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

fn normalize(row: &mut [f32]) {
    let n = llmql_core::index::dot::dot(row, row).sqrt().max(1e-12);
    row.iter_mut().for_each(|x| *x /= n);
}

/// `n` rows of the synthetic distribution, row `i` from its own seeded stream (parallel, reproducible).
fn rows(n: usize, a: &BenchIndexArgs, centres: &[f32], stream: u64) -> Vec<f32> {
    let d = a.dim;
    let mut v = vec![0f32; n * d];
    v.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        let mut g = Gauss::new(a.seed ^ (stream << 40) ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        if a.clusters == 0 {
            row.iter_mut().for_each(|x| *x = g.next());
        } else {
            let c = (g.uniform() * a.clusters as f64) as usize % a.clusters;
            let scale = a.noise / (d as f32).sqrt();
            for (x, m) in row.iter_mut().zip(&centres[c * d..(c + 1) * d]) {
                *x = m + scale * g.next();
            }
        }
        normalize(row);
    });
    v
}

struct ExactTruth<'a> {
    corpus: &'a Embeddings,
    queries: &'a Embeddings,
    k: usize,
}

impl BackendTask for ExactTruth<'_> {
    type Output = Result<Vec<Vec<usize>>>;
    fn run<B: Backend>(self, device: B::Device) -> Result<Vec<Vec<usize>>> {
        let mut s = ExactSearch::<B>::new(self.queries, self.k, &device);
        s.add(self.corpus)?;
        let run = s.finish();
        self.queries
            .ids
            .iter()
            .map(|q| Ok(run[q].iter().map(|e| e.docid[1..].parse::<usize>()).collect::<Result<Vec<_>, _>>()?))
            .collect()
    }
}

pub fn run(a: BenchIndexArgs) -> Result<serde_json::Value> {
    if a.rows == 0 || a.dim == 0 || a.queries == 0 || a.k == 0 {
        bail!("--rows, --dim, --queries and --k must be at least 1");
    }
    let efs: Vec<usize> = a.ef_search.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
    let rss_start = rss_mib();
    let t = Instant::now();
    let mut centres = rows(a.clusters, &BenchIndexArgs { clusters: 0, ..a.clone() }, &[], 1);
    if a.clusters == 0 {
        centres.clear();
    }
    let corpus = Embeddings {
        ids: (0..a.rows).map(|i| format!("d{i}")).collect(),
        values: rows(a.rows, &a, &centres, 2),
        dim: a.dim,
    };
    let queries = Embeddings {
        ids: (0..a.queries).map(|i| format!("q{i}")).collect(),
        values: rows(a.queries, &a, &centres, 3),
        dim: a.dim,
    };
    let gen_secs = t.elapsed().as_secs_f64();
    let rss_data = rss_mib();
    tracing::info!("generated {} x {} in {gen_secs:.1}s", a.rows, a.dim);

    let t = Instant::now();
    let truth = run_on(&DeviceSpec::Flex, ExactTruth { corpus: &corpus, queries: &queries, k: a.k })??;
    let exact_secs = t.elapsed().as_secs_f64();
    tracing::info!("exact ground truth (batched matmul) in {exact_secs:.1}s");

    let nf = a.flat_queries.min(a.queries);
    let t = Instant::now();
    for i in 0..nf {
        let hits = llmql_core::index::flat_search(&corpus, queries.row(i), a.k);
        assert_eq!(hits.len(), a.k.min(a.rows));
    }
    let flat_secs = t.elapsed().as_secs_f64();

    let params = HnswParams { m: a.hnsw_m, ef_construction: a.ef_construction, ef_search: efs[0] };
    let t = Instant::now();
    let mut last = Instant::now();
    let graph = HnswIndex::build(&corpus.values, a.dim, params, &mut |done, total| {
        if last.elapsed().as_secs() >= 30 {
            last = Instant::now();
            tracing::info!("hnsw: {done}/{total} inserted ({:.0}s)", t.elapsed().as_secs_f64());
        }
    })?;
    let build_secs = t.elapsed().as_secs_f64();
    let rss_built = rss_mib();
    tracing::info!("hnsw built in {build_secs:.1}s");

    let recall = |g: &HnswIndex, ef: usize| -> (f64, f64, f64) {
        let hit = |i: usize, got: Vec<(usize, f32)>| -> usize {
            let want: HashSet<usize> = truth[i].iter().copied().collect();
            got.iter().filter(|(r, _)| want.contains(r)).count()
        };
        let t = Instant::now();
        let found: usize = (0..a.queries).map(|i| hit(i, g.search(queries.row(i), a.k, Some(ef)))).sum();
        let one = a.queries as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let found_par: usize =
            (0..a.queries).into_par_iter().map(|i| hit(i, g.search(queries.row(i), a.k, Some(ef)))).sum();
        let all = a.queries as f64 / t.elapsed().as_secs_f64();
        let _ = found_par;
        (found as f64 / (a.queries * a.k) as f64, one, all)
    };
    let per_ef: Vec<serde_json::Value> = efs
        .iter()
        .map(|&ef| {
            let (r, one, all) = recall(&graph, ef);
            tracing::info!("ef {ef}: recall@{} {r:.4}, {one:.0} queries/s on one thread, {all:.0} on all", a.k);
            serde_json::json!({"ef_search": ef, "recall": r, "queries_per_s_1_thread": one, "queries_per_s_all_threads": all})
        })
        .collect();

    let saved = match &a.save {
        None => serde_json::Value::Null,
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let t = Instant::now();
            let name = graph.dump(dir, "bench")?;
            let dump_secs = t.elapsed().as_secs_f64();
            let files = HnswIndex::files(dir, &name);
            let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
            let t = Instant::now();
            let back = HnswIndex::load(dir, &name, params)?;
            let load_secs = t.elapsed().as_secs_f64();
            let (r, _, _) = recall(&back, efs[0]);
            for f in &files {
                let _ = std::fs::remove_file(f);
            }
            serde_json::json!({"dump_s": dump_secs, "load_s": load_secs, "bytes": bytes, "recall_after_reload": r})
        }
    };
    Ok(serde_json::json!({
        "bench": "index",
        "rows": a.rows, "dim": a.dim, "queries": a.queries, "clusters": a.clusters, "noise": a.noise, "k": a.k,
        "threads": rayon::current_num_threads(),
        "generate_s": gen_secs,
        "exact_batched_s": exact_secs, "exact_batched_queries_per_s": a.queries as f64 / exact_secs,
        "flat_single_query_per_s": nf as f64 / flat_secs,
        "hnsw": {"m": a.hnsw_m, "ef_construction": a.ef_construction, "build_s": build_secs, "search": per_ef, "saved": saved},
        "rss_mib": {"start": rss_start, "after_data": rss_data, "after_hnsw_build": rss_built, "peak": peak_rss_mib()},
        "vectors_mib": (a.rows * a.dim * 4) as f64 / (1 << 20) as f64,
    }))
}
