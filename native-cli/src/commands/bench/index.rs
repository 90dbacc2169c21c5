//! `llmql bench index`: exact (flat) versus the approximate engines on one synthetic corpus: build
//! time, recall@k against exact search, queries/s on one thread and on all, and memory per passage,
//! for every engine asked for (`--engines`): `ivf` and `hnsw` are `llmql index`'s own kinds (the
//! same `llmql_core::index` code), `usearch` is the usearch crate's HNSW (built with
//! `--features usearch`). `--write-vectors DIR` saves the corpus, queries and ground truth as
//! `.npy` for `bench/faiss_index.py`, which measures faiss on the same vectors.
//!
//! The corpus is clustered like real embeddings (uniformly random unit vectors in hundreds of
//! dimensions are unlike any encoder's output): `clusters` unit centres, each row a centre plus
//! Gaussian noise of norm `noise`, L2-normalised; queries are drawn the same way. With `--topics 0`
//! the centres are uniformly random (the README's hard case: with `noise 1` a row's cosine to its
//! centre is ~0.7 and to another row of its cluster ~0.5, so within a cluster the neighbours are
//! random); with `--topics T` the centres themselves are drawn around `T` random topics with noise
//! `--centre-noise`, so that cells, clusters and topics nest as in real embedding spaces. The ground
//! truth is the exact top-k of `llmql_core::search::ExactSearch` (what `llmql search` runs).
use super::peak_rss_mib;
use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use llmql_core::index::hnsw::{HnswIndex, HnswParams};
use llmql_core::index::ivf::{IvfIndex, IvfParams};
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
    /// Topics the centres are drawn around (0: centres uniformly random).
    #[arg(long, default_value_t = 0)]
    pub topics: usize,
    /// Norm of the Gaussian noise added to a topic to make a centre.
    #[arg(long, default_value_t = 1.0)]
    pub centre_noise: f32,
    /// Engines to measure (comma-separated): ivf, hnsw, usearch.
    #[arg(long, default_value = "ivf,hnsw")]
    pub engines: String,
    /// IVF: cells (0: the default of `llmql index`, 2 x sqrt(rows)).
    #[arg(long, default_value_t = 0)]
    pub ivf_lists: usize,
    /// IVF: cells scanned to measure (comma-separated; 0: the index's default).
    #[arg(long, default_value = "0,8,16,32,64,128")]
    pub nprobe: String,
    /// IVF: candidates re-scored exactly (0: the default).
    #[arg(long, default_value_t = 0)]
    pub rescore: usize,
    /// usearch: storage of the vectors (f32, f16 or i8).
    #[arg(long, default_value = "i8")]
    pub usearch_storage: String,
    /// Save corpus.npy, queries.npy and truth.npy (row numbers, int64) here for bench/faiss_index.py.
    #[arg(long)]
    pub write_vectors: Option<PathBuf>,
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
    /// Also write each index into this folder and time reloading it (the files are removed afterwards).
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

/// `n` rows of the synthetic distribution, row `i` from its own seeded stream (parallel,
/// reproducible): a random one of `centres` (`[c, dim]`) plus noise of norm `noise`, or a uniformly
/// random unit vector when there are no centres.
fn rows(n: usize, dim: usize, seed: u64, centres: &[f32], noise: f32, stream: u64) -> Vec<f32> {
    let d = dim;
    let c_n = centres.len() / d;
    let mut v = vec![0f32; n * d];
    v.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        let mut g = Gauss::new(seed ^ (stream << 40) ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        if c_n == 0 {
            row.iter_mut().for_each(|x| *x = g.next());
        } else {
            let c = (g.uniform() * c_n as f64) as usize % c_n;
            let scale = noise / (d as f32).sqrt();
            for (x, m) in row.iter_mut().zip(&centres[c * d..(c + 1) * d]) {
                *x = m + scale * g.next();
            }
        }
        normalize(row);
    });
    v
}

/// The cluster centres: uniformly random, or drawn around `topics` random topics.
fn centres(a: &BenchIndexArgs) -> Vec<f32> {
    if a.clusters == 0 {
        return Vec::new();
    }
    let topics = if a.topics == 0 { Vec::new() } else { rows(a.topics, a.dim, a.seed, &[], 0.0, 4) };
    rows(a.clusters, a.dim, a.seed, &topics, a.centre_noise, 1)
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

/// One search setting of one engine, measured over every query.
struct Point {
    setting: serde_json::Value,
    recall: f64,
    one_thread: f64,
    all_threads: f64,
}

/// Recall@k against `truth` and queries/s (one thread, then rayon's pool) of `search`.
fn measure(
    queries: &Embeddings,
    truth: &[Vec<usize>],
    k: usize,
    search: &(dyn Fn(&[f32]) -> Vec<usize> + Sync),
) -> (f64, f64, f64) {
    let hit = |i: usize| -> usize {
        let want: HashSet<usize> = truth[i].iter().copied().collect();
        search(queries.row(i)).iter().filter(|r| want.contains(r)).count()
    };
    let n = queries.rows();
    let t = Instant::now();
    let found: usize = (0..n).map(hit).sum();
    let one = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let _: usize = (0..n).into_par_iter().map(hit).sum();
    let all = n as f64 / t.elapsed().as_secs_f64();
    (found as f64 / (n * k) as f64, one, all)
}

fn point(setting: serde_json::Value, m: (f64, f64, f64), k: usize) -> Point {
    tracing::info!("{setting}: recall@{k} {:.4}, {:.0} queries/s on one thread, {:.0} on all", m.0, m.1, m.2);
    Point { setting, recall: m.0, one_thread: m.1, all_threads: m.2 }
}

fn engine_json(
    name: &str,
    build_s: f64,
    bytes: f64,
    rows: usize,
    params: serde_json::Value,
    points: Vec<Point>,
) -> serde_json::Value {
    serde_json::json!({
        "engine": name, "params": params, "build_s": build_s,
        "memory_bytes": bytes, "memory_bytes_per_passage": bytes / rows as f64,
        "search": points.into_iter().map(|p| serde_json::json!({
            "setting": p.setting, "recall": p.recall,
            "queries_per_s_1_thread": p.one_thread, "queries_per_s_all_threads": p.all_threads,
        })).collect::<Vec<_>>(),
    })
}

fn progress(name: &'static str) -> impl FnMut(usize, usize) {
    let t = Instant::now();
    let mut last = Instant::now();
    move |done, total| {
        if last.elapsed().as_secs() >= 30 {
            last = Instant::now();
            tracing::info!("{name}: {done}/{total} ({:.0}s)", t.elapsed().as_secs_f64());
        }
    }
}

fn list(s: &str) -> Result<Vec<usize>> {
    Ok(s.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?)
}

/// Writes a `[rows, cols]` little-endian `.npy` of `descr` (`<f4` or `<i8`) from raw bytes.
fn write_npy(path: &std::path::Path, descr: &str, rows: usize, cols: usize, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut header = dict.into_bytes();
    let pad = 64 - (10 + header.len() + 1) % 64;
    header.extend(std::iter::repeat_n(b' ', pad));
    header.push(b'\n');
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(&header)?;
    w.write_all(data)?;
    w.flush()?;
    Ok(())
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn run(a: BenchIndexArgs) -> Result<serde_json::Value> {
    if a.rows == 0 || a.dim == 0 || a.queries == 0 || a.k == 0 {
        bail!("--rows, --dim, --queries and --k must be at least 1");
    }
    let efs = list(&a.ef_search)?;
    let nprobes = list(&a.nprobe)?;
    let engines: Vec<String> = a.engines.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    for e in &engines {
        if !["ivf", "hnsw", "usearch"].contains(&e.as_str()) {
            bail!("--engines: unknown engine {e:?} (expected ivf, hnsw or usearch)");
        }
    }
    let rss_start = rss_mib();
    let t = Instant::now();
    let centres = centres(&a);
    let corpus = Embeddings {
        ids: (0..a.rows).map(|i| format!("d{i}")).collect(),
        values: rows(a.rows, a.dim, a.seed, &centres, a.noise, 2),
        dim: a.dim,
    };
    let queries = Embeddings {
        ids: (0..a.queries).map(|i| format!("q{i}")).collect(),
        values: rows(a.queries, a.dim, a.seed, &centres, a.noise, 3),
        dim: a.dim,
    };
    let gen_secs = t.elapsed().as_secs_f64();
    let rss_data = rss_mib();
    tracing::info!("generated {} x {} in {gen_secs:.1}s", a.rows, a.dim);

    let t = Instant::now();
    let truth = run_on(&DeviceSpec::Flex, ExactTruth { corpus: &corpus, queries: &queries, k: a.k })??;
    let exact_secs = t.elapsed().as_secs_f64();
    tracing::info!("exact ground truth (batched matmul) in {exact_secs:.1}s");
    if let Some(dir) = &a.write_vectors {
        std::fs::create_dir_all(dir)?;
        write_npy(&dir.join("corpus.npy"), "<f4", a.rows, a.dim, &f32_bytes(&corpus.values))?;
        write_npy(&dir.join("queries.npy"), "<f4", a.queries, a.dim, &f32_bytes(&queries.values))?;
        let t: Vec<u8> = truth.iter().flatten().flat_map(|&r| (r as i64).to_le_bytes()).collect();
        write_npy(&dir.join("truth.npy"), "<i8", a.queries, a.k, &t)?;
        tracing::info!("wrote corpus.npy, queries.npy, truth.npy into {}", dir.display());
    }

    let nf = a.flat_queries.min(a.queries);
    let t = Instant::now();
    for i in 0..nf {
        let hits = llmql_core::index::flat_search(&corpus, queries.row(i), a.k);
        assert_eq!(hits.len(), a.k.min(a.rows));
    }
    let flat_secs = t.elapsed().as_secs_f64();

    let vector_bytes = (a.rows * a.dim * 4) as f64;
    let mut results = Vec::new();
    for engine in &engines {
        let rss_before = rss_mib();
        let r = match engine.as_str() {
            "ivf" => {
                let params = IvfParams { lists: a.ivf_lists, nprobe: 0, rescore: a.rescore };
                let t = Instant::now();
                let ivf = IvfIndex::build(&corpus.values, a.dim, params, a.seed, &mut progress("ivf"))?;
                let build = t.elapsed().as_secs_f64();
                tracing::info!("ivf built in {build:.1}s: {:?}", ivf.params);
                let corpus = &corpus;
                let rows_of = |ivf: &IvfIndex, q: &[f32], np: Option<usize>| -> Vec<usize> {
                    ivf.search(q, a.k, np, &|r| llmql_core::index::dot::dot(corpus.row(r), q))
                        .into_iter()
                        .map(|h| h.0)
                        .collect()
                };
                let points = nprobes
                    .iter()
                    .map(|&np| {
                        let np = if np == 0 { ivf.params.nprobe } else { np };
                        let m = measure(&queries, &truth, a.k, &|q| rows_of(&ivf, q, Some(np)));
                        point(serde_json::json!({"nprobe": np, "default": np == ivf.params.nprobe}), m, a.k)
                    })
                    .collect();
                let p = ivf.params;
                let mut params = serde_json::json!({"lists": p.lists, "nprobe": p.nprobe, "rescore": p.rescore, "codes": "int8", "rescored_from": "f32 vectors (memory-mapped in llmql index)"});
                if let Some(dir) = &a.save {
                    std::fs::create_dir_all(dir)?;
                    let f = dir.join("bench-ivf.bin");
                    let t = Instant::now();
                    let bytes = ivf.write(&f)?;
                    let write_s = t.elapsed().as_secs_f64();
                    let t = Instant::now();
                    let back = IvfIndex::read(&f, a.dim, a.rows, p)?;
                    let load_s = t.elapsed().as_secs_f64();
                    let m = measure(&queries, &truth, a.k, &|q| rows_of(&back, q, None));
                    std::fs::remove_file(&f)?;
                    params["saved"] = serde_json::json!({"write_s": write_s, "load_s": load_s, "bytes": bytes, "recall_after_reload": m.0});
                }
                engine_json(
                    "llmql ivf (int8 + exact re-scoring)",
                    build,
                    ivf.memory_bytes() as f64,
                    a.rows,
                    params,
                    points,
                )
            }
            "hnsw" => {
                let params_h = HnswParams { m: a.hnsw_m, ef_construction: a.ef_construction, ef_search: efs[0] };
                let t = Instant::now();
                let graph = HnswIndex::build(&corpus.values, a.dim, params_h, &mut progress("hnsw"))?;
                let build = t.elapsed().as_secs_f64();
                let points = efs
                    .iter()
                    .map(|&ef| {
                        let m = measure(&queries, &truth, a.k, &|q| {
                            graph.search(q, a.k, Some(ef)).into_iter().map(|h| h.0).collect()
                        });
                        point(serde_json::json!({"ef_search": ef}), m, a.k)
                    })
                    .collect();
                let grown = (rss_mib().unwrap_or(0.0) - rss_before.unwrap_or(0.0)).max(0.0) * (1 << 20) as f64;
                let mut params = serde_json::json!({"m": a.hnsw_m, "ef_construction": a.ef_construction});
                if let Some(dir) = &a.save {
                    std::fs::create_dir_all(dir)?;
                    let t = Instant::now();
                    let name = graph.dump(dir, "bench")?;
                    let dump_s = t.elapsed().as_secs_f64();
                    let files = HnswIndex::files(dir, &name);
                    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
                    let t = Instant::now();
                    let back = HnswIndex::load(dir, &name, params_h)?;
                    let load_s = t.elapsed().as_secs_f64();
                    let m = measure(&queries, &truth, a.k, &|q| {
                        back.search(q, a.k, Some(efs[0])).into_iter().map(|h| h.0).collect()
                    });
                    for f in &files {
                        std::fs::remove_file(f)?;
                    }
                    params["saved"] = serde_json::json!({"dump_s": dump_s, "load_s": load_s, "bytes": bytes, "recall_after_reload": m.0});
                }
                engine_json("llmql hnsw (hnsw_rs)", build, grown, a.rows, params, points)
            }
            _ => usearch_engine(&a, &corpus, &queries, &truth, &efs)?,
        };
        results.push(r);
    }
    Ok(serde_json::json!({
        "bench": "index",
        "rows": a.rows, "dim": a.dim, "queries": a.queries, "clusters": a.clusters, "noise": a.noise,
        "topics": a.topics, "centre_noise": a.centre_noise, "k": a.k,
        "threads": rayon::current_num_threads(),
        "generate_s": gen_secs,
        "exact_batched_s": exact_secs, "exact_batched_queries_per_s": a.queries as f64 / exact_secs,
        "flat_single_query_per_s": nf as f64 / flat_secs,
        "flat_memory_bytes_per_passage": vector_bytes / a.rows as f64,
        "engines": results,
        "rss_mib": {"start": rss_start, "after_data": rss_data, "peak": peak_rss_mib()},
        "vectors_mib": vector_bytes / (1 << 20) as f64,
    }))
}

#[cfg(feature = "usearch")]
fn usearch_engine(
    a: &BenchIndexArgs,
    corpus: &Embeddings,
    queries: &Embeddings,
    truth: &[Vec<usize>],
    efs: &[usize],
) -> Result<serde_json::Value> {
    use usearch::{Index, IndexOptions, MetricKind, ScalarKind};
    let quantization = match a.usearch_storage.as_str() {
        "f32" => ScalarKind::F32,
        "f16" => ScalarKind::F16,
        "i8" => ScalarKind::I8,
        o => bail!("--usearch-storage: expected f32, f16 or i8, got {o:?}"),
    };
    let opts = IndexOptions {
        dimensions: a.dim,
        metric: MetricKind::IP,
        quantization,
        connectivity: a.hnsw_m,
        expansion_add: a.ef_construction,
        expansion_search: efs[0],
        multi: false,
    };
    let index = Index::new(&opts)?;
    index.reserve_capacity_and_threads(a.rows, rayon::current_num_threads())?;
    let t = Instant::now();
    let mut report = progress("usearch");
    let chunk = 10_000;
    for c in (0..a.rows).step_by(chunk) {
        let end = (c + chunk).min(a.rows);
        (c..end).into_par_iter().try_for_each(|i| index.add(i as u64, corpus.row(i)))?;
        report(end, a.rows);
    }
    let build = t.elapsed().as_secs_f64();
    tracing::info!("usearch built in {build:.1}s");
    let mut points = Vec::new();
    for &ef in efs {
        index.change_expansion_search(ef);
        let m = measure(queries, truth, a.k, &|q| {
            index.search(q, a.k).map(|m| m.keys.into_iter().map(|k| k as usize).collect()).unwrap_or_default()
        });
        points.push(point(serde_json::json!({"ef_search": ef}), m, a.k));
    }
    let params = serde_json::json!({"m": a.hnsw_m, "ef_construction": a.ef_construction, "storage": a.usearch_storage});
    Ok(engine_json(
        &format!("usearch (HNSW, {})", a.usearch_storage),
        build,
        index.memory_usage() as f64,
        a.rows,
        params,
        points,
    ))
}

#[cfg(not(feature = "usearch"))]
fn usearch_engine(
    _: &BenchIndexArgs,
    _: &Embeddings,
    _: &Embeddings,
    _: &[Vec<usize>],
    _: &[usize],
) -> Result<serde_json::Value> {
    bail!("--engines usearch: this llmql was built without the usearch crate (cargo build --release -p llmql-cli --features usearch)")
}
