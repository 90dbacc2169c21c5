//! Search indexes over `llmql encode` output, for `llmql index`, `llmql search` and `llmql serve`.
//!
//! An index folder is self-describing:
//!
//! ```text
//! IDX/index.json       format "llmql-index/1", kind (flat | ivf | hnsw), dim, metric (inner_product),
//!                      count, file names, IVF or HNSW parameters, and the encoder settings of the corpus
//!                      (its `meta.json`: model, adapter, template, max_len, ...)
//! IDX/ids.txt          one passage id per row
//! IDX/embeddings.npy   the vectors, [count, dim] f32 (so IDX is also a plain `encode` output)
//! IDX/ivf.bin          kind ivf: k-means cells, int8 codes ([`ivf`]); re-scored from embeddings.npy
//! IDX/hnsw.hnsw.graph  kind hnsw: the graph and its copy of the vectors (hnsw_rs's dump)
//! IDX/hnsw.hnsw.data
//! ```
//!
//! It is written under a temporary name and renamed into place whole ([`crate::output::replace_dir`]),
//! so a folder named IDX is always complete. `flat` is exact search (every row scored; the same top-K
//! as `llmql search` on the encode output, ties by id); `ivf` ([`ivf`]) and `hnsw` ([`hnsw`]) are
//! approximate (`llmql bench index` compares them; `ivf` is the one that keeps its recall at 1M).
//! A plain `encode` output folder opens as a flat index too.
pub mod db;
pub mod dot;
#[cfg(feature = "ann")]
pub mod hnsw;
#[cfg(feature = "ann")]
pub mod ivf;
#[cfg(feature = "lancedb")]
pub mod lancedb;
#[cfg(feature = "qdrant")]
pub mod qdrant;

use crate::error::{Error, Result};
use crate::npy::NpyWriter;
use crate::search::{find_shards, load_all, Embeddings, TopK};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const INDEX_FILE: &str = "index.json";
pub const FORMAT: &str = "llmql-index/1";
pub const METRIC: &str = "inner_product";
const VECTORS_FILE: &str = "embeddings.npy";
const IDS_FILE: &str = "ids.txt";
#[cfg(feature = "ann")]
const HNSW_NAME: &str = "hnsw";
#[cfg(feature = "ann")]
const IVF_FILE: &str = "ivf.bin";

/// Which index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Exact: every row scored.
    Flat,
    /// Approximate: k-means cells, int8 codes, exact re-scoring.
    Ivf,
    /// Approximate: an HNSW graph.
    Hnsw,
}

impl IndexKind {
    pub fn name(self) -> &'static str {
        match self {
            IndexKind::Flat => "flat",
            IndexKind::Ivf => "ivf",
            IndexKind::Hnsw => "hnsw",
        }
    }
}

impl std::str::FromStr for IndexKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "flat" => Ok(IndexKind::Flat),
            "ivf" => Ok(IndexKind::Ivf),
            "hnsw" => Ok(IndexKind::Hnsw),
            o => Err(format!("unknown index kind {o:?}: expected flat, ivf or hnsw")),
        }
    }
}

/// HNSW parameters as stored (see [`hnsw::HnswParams`]), with the dump's base name and file sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswMeta {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub name: String,
    pub graph_bytes: u64,
    pub data_bytes: u64,
}

/// IVF parameters as stored (resolved: no zeros; see [`ivf::IvfParams`]), with the file's name and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IvfMeta {
    pub lists: usize,
    pub nprobe: usize,
    pub rescore: usize,
    pub seed: u64,
    pub file: String,
    pub bytes: u64,
}

/// How hard an approximate search looks (`None`: the index's default); exact indexes ignore it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchEffort {
    /// HNSW: candidates kept.
    pub ef_search: Option<usize>,
    /// IVF: cells scanned.
    pub nprobe: Option<usize>,
}

/// `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexMeta {
    pub format: String,
    pub kind: IndexKind,
    pub dim: usize,
    pub metric: String,
    pub count: usize,
    pub ids: String,
    pub vectors: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw: Option<HnswMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivf: Option<IvfMeta>,
    /// A database table's engine and its search settings ([`db`]); absent for index folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<db::DbMeta>,
    /// The corpus's `meta.json` from `llmql encode` (model, adapter, template, max_len, ...), or null.
    #[serde(default)]
    pub encoder: serde_json::Value,
    #[serde(default)]
    pub build_seconds: f64,
    #[serde(default)]
    pub llmql_version: String,
}

/// What [`build`] makes.
#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    pub kind: IndexKind,
    /// Used for `kind: hnsw` (`m`, `ef_construction`, default `ef_search`).
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// Used for `kind: ivf` (0: chosen from the row count; see `ivf::IvfParams::resolve`).
    pub lists: usize,
    pub nprobe: usize,
    pub rescore: usize,
    /// k-means sample and start (`kind: ivf`).
    pub seed: u64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            kind: IndexKind::Flat,
            m: 16,
            ef_construction: 100,
            ef_search: 64,
            lists: 0,
            nprobe: 0,
            rescore: 0,
            seed: 0,
        }
    }
}

/// The `meta.json` (or `meta.0.json`) that `llmql encode` wrote beside the vectors, if any.
fn encoder_meta(corpus: &Path) -> Result<serde_json::Value> {
    for name in ["meta.json", "meta.0.json"] {
        let p = corpus.join(name);
        if p.is_file() {
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            let mut v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::Json { path: p.clone(), source: e })?;
            // Shard fields describe one shard, not the corpus.
            if let Some(o) = v.as_object_mut() {
                o.remove("shard");
                o.remove("count");
            }
            return Ok(v);
        }
    }
    Ok(serde_json::Value::Null)
}

/// Checks what an index can hold: rows, finite values, and for the approximate kinds unit vectors
/// (HNSW's distance `1 - <a, b>` orders by inner product only for them; IVF's cells are directions).
fn check_rows(corpus: &Path, e: &Embeddings, meta: &serde_json::Value, kind: IndexKind) -> Result<()> {
    if e.rows() == 0 {
        return Err(Error::config(corpus, "the corpus has no rows"));
    }
    if let Some(i) = (0..e.rows()).find(|&i| !e.row(i).iter().all(|v| v.is_finite())) {
        return Err(Error::config(corpus, format!("row {} ({:?}) holds a non-finite value", i, e.ids[i])));
    }
    if kind != IndexKind::Flat {
        let what = kind.name().to_uppercase();
        if meta["normalized"] == serde_json::Value::Bool(false) {
            return Err(Error::config(
                corpus,
                format!("the embeddings are not L2-normalised (encoded with --no-normalize): an {what} index needs unit vectors; use --kind flat"),
            ));
        }
        if let Some(i) = (0..e.rows()).find(|&i| (dot::dot(e.row(i), e.row(i)) - 1.0).abs() > 1e-3) {
            return Err(Error::config(
                corpus,
                format!(
                    "row {} ({:?}) is not a unit vector: an {what} index needs L2-normalised embeddings; use --kind flat",
                    i, e.ids[i]
                ),
            ));
        }
    }
    Ok(())
}

/// Builds an index of every shard of the `encode` output `corpus` into `out` (replaced only when
/// llmql wrote it). `on_progress(done, total)` reports HNSW insertion or IVF assignment.
pub fn build(
    corpus: &Path,
    out: &Path,
    opts: &BuildOptions,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<IndexMeta> {
    crate::output::check_replaceable(out)?;
    let start = std::time::Instant::now();
    let encoder = encoder_meta(corpus)?;
    let e = load_all(corpus)?;
    check_rows(corpus, &e, &encoder, opts.kind)?;
    let tmp = crate::output::temp_sibling(out);
    std::fs::create_dir_all(&tmp).map_err(|err| Error::io(&tmp, err))?;
    let result = (|| {
        write_vectors(&tmp, &e)?;
        let (hnsw, ivf) = match opts.kind {
            IndexKind::Flat => (None, None),
            IndexKind::Ivf => (None, Some(build_ivf(&tmp, &e, opts, on_progress)?)),
            IndexKind::Hnsw => (Some(build_hnsw(&tmp, &e, opts, on_progress)?), None),
        };
        let meta = IndexMeta {
            format: FORMAT.into(),
            kind: opts.kind,
            dim: e.dim,
            metric: METRIC.into(),
            count: e.rows(),
            ids: IDS_FILE.into(),
            vectors: VECTORS_FILE.into(),
            hnsw,
            ivf,
            database: None,
            encoder,
            build_seconds: start.elapsed().as_secs_f64(),
            llmql_version: env!("CARGO_PKG_VERSION").into(),
        };
        let p = tmp.join(INDEX_FILE);
        let text = serde_json::to_vec_pretty(&meta).map_err(|err| Error::Other(err.to_string()))?;
        std::fs::write(&p, text).map_err(|err| Error::io(&p, err))?;
        Ok(meta)
    })();
    match result {
        Ok(meta) => {
            crate::output::replace_dir(&tmp, out, "index")?;
            Ok(meta)
        }
        Err(err) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(err)
        }
    }
}

fn write_vectors(dir: &Path, e: &Embeddings) -> Result<()> {
    let p = dir.join(VECTORS_FILE);
    let f = std::fs::File::create(&p).map_err(|err| Error::io(&p, err))?;
    let mut npy = NpyWriter::new(std::io::BufWriter::new(f), e.dim).map_err(|err| Error::io(&p, err))?;
    for i in 0..e.rows() {
        npy.write_row(e.row(i)).map_err(|err| Error::io(&p, err))?;
    }
    npy.finish().map_err(|err| Error::io(&p, err))?;
    let p = dir.join(IDS_FILE);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&p).map_err(|err| Error::io(&p, err))?);
    for id in &e.ids {
        writeln!(w, "{id}").map_err(|err| Error::io(&p, err))?;
    }
    w.flush().map_err(|err| Error::io(&p, err))
}

#[cfg(feature = "ann")]
fn build_hnsw(
    dir: &Path,
    e: &Embeddings,
    opts: &BuildOptions,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<HnswMeta> {
    let params = hnsw::HnswParams { m: opts.m, ef_construction: opts.ef_construction, ef_search: opts.ef_search };
    let g = hnsw::HnswIndex::build(&e.values, e.dim, params, on_progress)?;
    let name = g.dump(dir, HNSW_NAME)?;
    let [graph, data] = hnsw::HnswIndex::files(dir, &name);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(|err| Error::io(p, err));
    Ok(HnswMeta {
        m: params.m,
        ef_construction: params.ef_construction,
        ef_search: params.ef_search,
        name,
        graph_bytes: size(&graph)?,
        data_bytes: size(&data)?,
    })
}

#[cfg(not(feature = "ann"))]
fn build_hnsw(dir: &Path, _: &Embeddings, _: &BuildOptions, _: &mut dyn FnMut(usize, usize)) -> Result<HnswMeta> {
    Err(Error::config(dir, "this build of llmql has no HNSW support (feature `ann`)"))
}

#[cfg(feature = "ann")]
fn build_ivf(
    dir: &Path,
    e: &Embeddings,
    opts: &BuildOptions,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<IvfMeta> {
    let params = ivf::IvfParams { lists: opts.lists, nprobe: opts.nprobe, rescore: opts.rescore };
    let index = ivf::IvfIndex::build(&e.values, e.dim, params, opts.seed, on_progress)?;
    let bytes = index.write(&dir.join(IVF_FILE))?;
    let p = index.params;
    Ok(IvfMeta { lists: p.lists, nprobe: p.nprobe, rescore: p.rescore, seed: opts.seed, file: IVF_FILE.into(), bytes })
}

#[cfg(not(feature = "ann"))]
fn build_ivf(dir: &Path, _: &Embeddings, _: &BuildOptions, _: &mut dyn FnMut(usize, usize)) -> Result<IvfMeta> {
    Err(Error::config(dir, "this build of llmql has no IVF support (feature `ann`)"))
}

enum Store {
    Flat(Embeddings),
    #[cfg(feature = "ann")]
    Hnsw {
        graph: hnsw::HnswIndex,
        ids: Vec<String>,
    },
    #[cfg(feature = "ann")]
    Ivf {
        index: ivf::IvfIndex,
        ids: Vec<String>,
        vectors: MappedVectors,
    },
    /// A database table ([`db`]).
    Db(db::DbIndex),
}

/// The f32 rows of an `embeddings.npy`, memory-mapped (read only where a row is asked for).
#[cfg(feature = "ann")]
struct MappedVectors {
    map: memmap2::Mmap,
    start: usize,
    dim: usize,
}

#[cfg(feature = "ann")]
impl MappedVectors {
    fn open(path: &Path, rows: usize, dim: usize) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the index folder is llmql's and read-only while open; a file changed under the map
        // could give wrong scores, never unsafety beyond what reading bytes allows.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
        let (start, r, d) = crate::npy::f32_matrix_layout(&map, path)?;
        if r != rows || d != dim {
            return Err(Error::config(
                path,
                format!("holds {r} rows of dimension {d}, index.json says {rows} of {dim}"),
            ));
        }
        Ok(Self { map, start, dim })
    }

    fn dot(&self, row: usize, q: &[f32]) -> f32 {
        let a = self.start + row * self.dim * 4;
        let bytes = &self.map[a..a + self.dim * 4];
        let mut buf = [0f32; 64];
        let mut s = 0f32;
        for (chunk, qc) in bytes.chunks(4 * buf.len()).zip(q.chunks(buf.len())) {
            let n = chunk.len() / 4;
            for (b, c) in buf.iter_mut().zip(chunk.chunks_exact(4)) {
                *b = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            s += dot::dot(&buf[..n], qc);
        }
        s
    }
}

/// An opened index: an `llmql index` folder, an `encode` output (searched exactly), or a database
/// table ([`Index::open_db`]).
pub struct Index {
    pub meta: IndexMeta,
    /// The folder, or for a database table its label (`ENGINE:URI#TABLE`).
    pub dir: PathBuf,
    store: Store,
}

/// Rows scored per parallel task of a flat search.
const FLAT_BLOCK: usize = 8192;

impl Index {
    /// True when `dir` holds an `index.json`.
    pub fn is_index_dir(dir: &Path) -> bool {
        dir.join(INDEX_FILE).is_file()
    }

    /// Reads and checks `index.json` of an index folder (without loading the index).
    pub fn open_meta(dir: &Path) -> Result<IndexMeta> {
        let p = dir.join(INDEX_FILE);
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        let meta: IndexMeta = serde_json::from_str(&text).map_err(|e| Error::Json { path: p.clone(), source: e })?;
        if meta.format != FORMAT {
            return Err(Error::config(
                &p,
                format!("field `format`: unknown index format {:?} (expected {FORMAT:?})", meta.format),
            ));
        }
        if meta.metric != METRIC {
            return Err(Error::config(
                &p,
                format!("field `metric`: unknown metric {:?} (expected {METRIC:?})", meta.metric),
            ));
        }
        for (field, name) in [("ids", &meta.ids), ("vectors", &meta.vectors)] {
            crate::paths::check_relative_name(name, &format!("field `{field}`")).map_err(|m| Error::config(&p, m))?;
        }
        Ok(meta)
    }

    /// Opens an index folder, or an `encode` output folder as a flat index.
    pub fn open(dir: &Path) -> Result<Self> {
        if !Self::is_index_dir(dir) {
            find_shards(dir)?;
            let e = load_all(dir)?;
            let meta = IndexMeta {
                format: FORMAT.into(),
                kind: IndexKind::Flat,
                dim: e.dim,
                metric: METRIC.into(),
                count: e.rows(),
                ids: IDS_FILE.into(),
                vectors: VECTORS_FILE.into(),
                hnsw: None,
                ivf: None,
                database: None,
                encoder: encoder_meta(dir)?,
                build_seconds: 0.0,
                llmql_version: env!("CARGO_PKG_VERSION").into(),
            };
            return Ok(Self { meta, dir: dir.into(), store: Store::Flat(e) });
        }
        let meta = Self::open_meta(dir)?;
        let p = dir.join(INDEX_FILE);
        let ids_path = dir.join(&meta.ids);
        let store = match meta.kind {
            IndexKind::Flat => {
                let e = Embeddings::load(&dir.join(&meta.vectors), &ids_path)?;
                if e.dim != meta.dim || e.rows() != meta.count {
                    return Err(Error::config(
                        &p,
                        format!(
                            "says {} rows of dimension {}, {} holds {} of {}",
                            meta.count,
                            meta.dim,
                            meta.vectors,
                            e.rows(),
                            e.dim
                        ),
                    ));
                }
                Store::Flat(e)
            }
            IndexKind::Hnsw => Self::open_hnsw(dir, &p, &meta, &ids_path)?,
            IndexKind::Ivf => Self::open_ivf(dir, &p, &meta, &ids_path)?,
        };
        Ok(Self { meta, dir: dir.into(), store })
    }

    /// Opens a database table llmql wrote (`llmql index --db`).
    pub fn open_db(target: &db::DbTarget) -> Result<Self> {
        let (meta, t) = db::open(target)?;
        Ok(Self { meta, dir: PathBuf::from(target.label()), store: Store::Db(t) })
    }

    /// True for a database table (its hits carry their stored texts).
    pub fn is_db(&self) -> bool {
        matches!(self.store, Store::Db(_))
    }

    #[cfg(feature = "ann")]
    fn open_hnsw(dir: &Path, p: &Path, meta: &IndexMeta, ids_path: &Path) -> Result<Store> {
        let h =
            meta.hnsw.as_ref().ok_or_else(|| Error::config(p, "field `hnsw`: missing for an index of kind hnsw"))?;
        crate::paths::check_relative_name(&h.name, "field `hnsw.name`").map_err(|m| Error::config(p, m))?;
        let files = hnsw::HnswIndex::files(dir, &h.name);
        for (f, want) in files.iter().zip([h.graph_bytes, h.data_bytes]) {
            let got = std::fs::metadata(f).map_err(|e| Error::io(f, e))?.len();
            if got != want {
                return Err(Error::config(
                    f,
                    format!("{got} bytes, index.json says {want}: the file is damaged or from another build"),
                ));
            }
        }
        let ids = read_ids(ids_path, meta.count)?;
        let params = hnsw::HnswParams { m: h.m, ef_construction: h.ef_construction, ef_search: h.ef_search };
        let graph = hnsw::HnswIndex::load(dir, &h.name, params)?;
        if graph.len() != meta.count {
            return Err(Error::config(&files[0], format!("{} rows, index.json says {}", graph.len(), meta.count)));
        }
        Ok(Store::Hnsw { graph, ids })
    }

    #[cfg(not(feature = "ann"))]
    fn open_hnsw(_: &Path, p: &Path, _: &IndexMeta, _: &Path) -> Result<Store> {
        Err(Error::config(p, "an HNSW index, but this build of llmql has no HNSW support (feature `ann`)"))
    }

    #[cfg(feature = "ann")]
    fn open_ivf(dir: &Path, p: &Path, meta: &IndexMeta, ids_path: &Path) -> Result<Store> {
        let m = meta.ivf.as_ref().ok_or_else(|| Error::config(p, "field `ivf`: missing for an index of kind ivf"))?;
        crate::paths::check_relative_name(&m.file, "field `ivf.file`").map_err(|e| Error::config(p, e))?;
        let f = dir.join(&m.file);
        let got = std::fs::metadata(&f).map_err(|e| Error::io(&f, e))?.len();
        if got != m.bytes {
            return Err(Error::config(
                &f,
                format!(
                    "{got} bytes, index.json says {}: the file is truncated, damaged or from another build",
                    m.bytes
                ),
            ));
        }
        let params = ivf::IvfParams { lists: m.lists, nprobe: m.nprobe, rescore: m.rescore };
        let index = ivf::IvfIndex::read(&f, meta.dim, meta.count, params)?;
        let vectors = MappedVectors::open(&dir.join(&meta.vectors), meta.count, meta.dim)?;
        Ok(Store::Ivf { index, ids: read_ids(ids_path, meta.count)?, vectors })
    }

    #[cfg(not(feature = "ann"))]
    fn open_ivf(_: &Path, p: &Path, _: &IndexMeta, _: &Path) -> Result<Store> {
        Err(Error::config(p, "an IVF index, but this build of llmql has no IVF support (feature `ann`)"))
    }

    pub fn kind(&self) -> IndexKind {
        self.meta.kind
    }

    pub fn dim(&self) -> usize {
        self.meta.dim
    }

    pub fn len(&self) -> usize {
        self.meta.count
    }

    pub fn is_empty(&self) -> bool {
        self.meta.count == 0
    }

    /// The top `k` rows for one query vector, best first: `(inner product, id)`, ties by id. Flat:
    /// exact (as `llmql search`); IVF and HNSW: approximate, as hard as `effort` says (default: the
    /// index's). IVF's scores are exact inner products (re-scored), HNSW's are the graph's.
    pub fn search(&self, query: &[f32], k: usize, effort: SearchEffort) -> Result<Vec<(f32, String)>> {
        self.check_query(query)?;
        match &self.store {
            Store::Db(t) => Ok(t.search(query, k, effort)?.into_iter().map(|h| (h.score, h.id)).collect()),
            Store::Flat(e) => Ok(flat_search(e, query, k)),
            #[cfg(feature = "ann")]
            Store::Hnsw { graph, ids } => Ok(by_score_then_id(graph.search(query, k, effort.ef_search), ids)),
            #[cfg(feature = "ann")]
            Store::Ivf { index, ids, vectors } => {
                let hits = index.search(query, k, effort.nprobe, &|row| vectors.dot(row, query));
                Ok(by_score_then_id(hits, ids))
            }
        }
    }
}

impl Index {
    /// Refuses a query vector of another dimension than the index's.
    fn check_query(&self, query: &[f32]) -> Result<()> {
        if query.len() != self.meta.dim {
            return Err(Error::Other(format!(
                "query vector has {} dimensions, the index has {}",
                query.len(),
                self.meta.dim
            )));
        }
        Ok(())
    }

    /// As [`Index::search`], with each passage's stored title and text where the index holds them
    /// (database tables written with `--passages`); `None` elsewhere.
    pub fn search_hits(&self, query: &[f32], k: usize, effort: SearchEffort) -> Result<Vec<db::Hit>> {
        if let Store::Db(t) = &self.store {
            self.check_query(query)?;
            return t.search(query, k, effort);
        }
        Ok(self
            .search(query, k, effort)?
            .into_iter()
            .map(|(score, id)| db::Hit { score, id, title: None, text: None })
            .collect())
    }
}

/// `(row, score)` hits as `(score, id)`, best first, ties by id.
#[cfg(feature = "ann")]
fn by_score_then_id(hits: Vec<(usize, f32)>, ids: &[String]) -> Vec<(f32, String)> {
    let mut hits: Vec<(f32, String)> = hits.into_iter().map(|(row, s)| (s, ids[row].clone())).collect();
    hits.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    hits
}

/// `ids.txt` of an index of `count` rows.
#[cfg(feature = "ann")]
fn read_ids(path: &Path, count: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let ids: Vec<String> = text.lines().map(str::to_string).collect();
    if ids.len() != count {
        return Err(Error::config(path, format!("{} ids, index.json says {count}", ids.len())));
    }
    Ok(ids)
}

/// Exact top-`k` of one query over every row, blocks scored in parallel.
pub fn flat_search(e: &Embeddings, query: &[f32], k: usize) -> Vec<(f32, String)> {
    let tops: Vec<TopK> = e
        .ids
        .par_chunks(FLAT_BLOCK)
        .enumerate()
        .map(|(b, ids)| {
            let scores: Vec<f32> = (0..ids.len()).map(|i| dot::dot(e.row(b * FLAT_BLOCK + i), query)).collect();
            let mut t = TopK::new(k);
            t.offer(&scores, ids);
            t
        })
        .collect();
    let mut all = TopK::new(k);
    for t in tops {
        let (scores, ids): (Vec<f32>, Vec<String>) = t.into_sorted().into_iter().unzip();
        all.offer(&scores, &ids);
    }
    all.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_rows(n: usize, dim: usize, seed: u64) -> Embeddings {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut values = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let row: Vec<f32> = (0..dim).map(|_| rng.random::<f32>() - 0.5).collect();
            let norm = dot::dot(&row, &row).sqrt();
            values.extend(row.iter().map(|v| v / norm));
        }
        Embeddings { ids: (0..n).map(|i| format!("d{i}")).collect(), values, dim }
    }

    #[test]
    fn flat_search_equals_the_sequential_exact_search() {
        let e = unit_rows(20_000, 24, 7);
        for q in [0usize, 123, 19_999] {
            let got = flat_search(&e, e.row(q), 10);
            let want = e.search_one(e.row(q), 10).unwrap();
            let ids = |v: &[(f32, String)]| v.iter().map(|x| x.1.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&want));
            assert_eq!(got[0].1, format!("d{q}"));
            for (a, b) in got.iter().zip(&want) {
                assert!((a.0 - b.0).abs() < 1e-5);
            }
        }
    }
}
