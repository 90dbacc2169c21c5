//! Vector databases as index stores: `llmql index --db URI --table NAME` writes an `encode` output
//! (ids, vectors, passage texts, and llmql's encoder settings) into a database table; `llmql search
//! --db` and `llmql serve --db` search it like an index folder.
//!
//! For corpora that outgrow one machine's index folder, or users who already run a vector
//! database. Engines (each behind its cargo feature of the same name):
//!
//! - `lancedb:PATH_OR_URI` ([`super::lancedb`]): LanceDB, embedded (no server): a local folder or an
//!   object-store URI. `--kind flat` searches exactly (the same top-K as a flat index folder); `--kind
//!   ivf` builds LanceDB's IVF_SQ index (k-means cells, int8 codes, exact re-ranking: the same recipe
//!   as llmql's own `ivf`).
//! - `qdrant:http://HOST:6334` ([`super::qdrant`]): a Qdrant server or cluster over gRPC. `--kind
//!   flat` searches exactly; `--kind hnsw` uses Qdrant's HNSW index.
//!
//! A table records what [`IndexMeta`] an index folder's `index.json` holds (kind, dim, count,
//! encoder settings), under [`META_KEY`]; llmql overwrites only tables that carry it (never one it
//! did not write), and refuses to search a table whose record disagrees with its rows.
use super::{IndexKind, IndexMeta, SearchEffort};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The key of llmql's record ([`IndexMeta`] as JSON) in a table's metadata.
pub const META_KEY: &str = "llmql.index";
/// The table `--table` names when not given.
pub const DEFAULT_TABLE: &str = "passages";

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    LanceDb,
    Qdrant,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::LanceDb => "lancedb",
            Engine::Qdrant => "qdrant",
        }
    }
}

/// A table in a database: `--db ENGINE:URI` and `--table NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbTarget {
    pub engine: Engine,
    /// What the engine connects to (LanceDB: a folder or object-store URI; Qdrant: the gRPC URL).
    pub uri: String,
    pub table: String,
}

impl DbTarget {
    /// Parses `ENGINE:URI` (`lancedb:/data/lance`, `lancedb:s3://bucket/db`, `qdrant:http://host:6334`)
    /// and a table (collection) name.
    pub fn parse(db: &str, table: &str) -> std::result::Result<Self, String> {
        let (engine, uri) =
            db.split_once(':').ok_or_else(|| format!("--db {db:?}: expected ENGINE:URI, e.g. lancedb:/data/lance"))?;
        let engine = match engine {
            "lancedb" => Engine::LanceDb,
            "qdrant" => Engine::Qdrant,
            o => return Err(format!("--db {db:?}: unknown database {o:?} (expected lancedb or qdrant)")),
        };
        if uri.is_empty() {
            return Err(format!("--db {db:?}: the URI after {:?} is empty", engine.name()));
        }
        let ok = !table.is_empty()
            && table.len() <= 128
            && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            && !table.starts_with('.');
        if !ok {
            return Err(format!("--table {table:?}: use 1 to 128 letters, digits, '_', '-' or '.' (not first)"));
        }
        Ok(Self { engine, uri: uri.into(), table: table.into() })
    }

    /// `ENGINE:URI#TABLE`, as errors and `/health` name it.
    pub fn label(&self) -> String {
        format!("{}:{}#{}", self.engine.name(), self.uri, self.table)
    }

    /// An error about this table (its label in place of a path).
    pub fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::config(PathBuf::from(self.label()), message.to_string())
    }
}

/// How the database's table is searched, as recorded in [`IndexMeta::database`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbMeta {
    pub engine: Engine,
    pub table: String,
    /// The engine's vector index: `none` (exact), `IVF_SQ` (LanceDB, `kind: ivf`) or `HNSW` (Qdrant,
    /// `kind: hnsw`).
    pub vector_index: String,
    /// IVF_SQ: cells, default cells scanned and candidates re-ranked exactly (else 0).
    #[serde(default)]
    pub lists: usize,
    #[serde(default)]
    pub nprobe: usize,
    #[serde(default)]
    pub rescore: usize,
    /// HNSW: links per node, build candidates, default search candidates (else 0).
    #[serde(default)]
    pub m: usize,
    #[serde(default)]
    pub ef_construction: usize,
    #[serde(default)]
    pub ef_search: usize,
    /// Passages stored with a text.
    pub texts: usize,
}

/// What [`write`] makes.
#[derive(Debug, Clone)]
pub struct DbWriteOptions {
    /// `flat` (exact), `ivf` (LanceDB) or `hnsw` (Qdrant).
    pub kind: IndexKind,
    /// IVF cells, default cells scanned, candidates re-ranked (0: llmql's own IVF defaults).
    pub lists: usize,
    pub nprobe: usize,
    pub rescore: usize,
    /// HNSW links per node, build candidates, default search candidates.
    pub hnsw_m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// Passage texts (JSON lines: `_id`, `text`, optional `title`) stored beside the vectors.
    pub passages: Option<PathBuf>,
}

/// One search result with its stored passage.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub score: f32,
    pub id: String,
    pub title: Option<String>,
    pub text: Option<String>,
}

/// Sorts best first, ties by id (as every llmql index does).
pub fn sort_hits(hits: &mut [Hit]) {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
}

/// An opened table.
pub enum DbIndex {
    #[cfg(feature = "lancedb")]
    LanceDb(super::lancedb::LanceIndex),
    #[cfg(feature = "qdrant")]
    Qdrant(super::qdrant::QdrantIndex),
}

impl DbIndex {
    /// The top `k` passages for `query`, best first, ties by id; scores are exact inner products
    /// (IVF: re-ranked with the stored f32 vectors).
    pub fn search(&self, query: &[f32], k: usize, effort: SearchEffort) -> Result<Vec<Hit>> {
        let _ = (query, k, effort);
        match *self {
            #[cfg(feature = "lancedb")]
            DbIndex::LanceDb(ref t) => t.search(query, k, effort),
            #[cfg(feature = "qdrant")]
            DbIndex::Qdrant(ref t) => t.search(query, k, effort),
        }
    }
}

/// Refuses a build without the engine `target` names.
fn unsupported(target: &DbTarget) -> Error {
    target.error(format!(
        "this build of llmql has no {0} support: build it with `--features {0}` (see README, \"Vector databases\")",
        target.engine.name()
    ))
}

/// Checks the options before anything is read or written.
fn check_options(target: &DbTarget, opts: &DbWriteOptions) -> Result<()> {
    match (target.engine, opts.kind) {
        (_, IndexKind::Flat) | (Engine::LanceDb, IndexKind::Ivf) | (Engine::Qdrant, IndexKind::Hnsw) => Ok(()),
        (Engine::LanceDb, k) => {
            Err(target.error(format!("--kind {}: a LanceDB table is flat (exact) or ivf (IVF_SQ)", k.name())))
        }
        (Engine::Qdrant, k) => {
            Err(target.error(format!("--kind {}: a Qdrant collection is flat (exact) or hnsw", k.name())))
        }
    }
}

/// True when this build has the engine.
fn built_with(engine: Engine) -> bool {
    match engine {
        Engine::LanceDb => cfg!(feature = "lancedb"),
        Engine::Qdrant => cfg!(feature = "qdrant"),
    }
}

/// Writes every shard of the `encode` output `corpus` (and the texts of `opts.passages`) into the
/// table, replacing a table llmql wrote before; returns the record stored with it.
/// `on_progress(done, total)` reports rows written.
pub fn write(
    target: &DbTarget,
    corpus: &Path,
    opts: &DbWriteOptions,
    on_progress: std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>,
) -> Result<IndexMeta> {
    check_options(target, opts)?;
    if !built_with(target.engine) {
        return Err(unsupported(target));
    }
    #[cfg(any(feature = "lancedb", feature = "qdrant"))]
    {
        let start = std::time::Instant::now();
        let input = prepare(target, corpus, opts)?;
        let mut meta = match target.engine {
            #[cfg(feature = "lancedb")]
            Engine::LanceDb => super::lancedb::write(target, input, on_progress)?,
            #[cfg(feature = "qdrant")]
            Engine::Qdrant => super::qdrant::write(target, input, on_progress)?,
            #[allow(unreachable_patterns)]
            _ => return Err(unsupported(target)),
        };
        meta.build_seconds = start.elapsed().as_secs_f64();
        Ok(meta)
    }
    #[cfg(not(any(feature = "lancedb", feature = "qdrant")))]
    {
        let _ = (corpus, on_progress);
        Err(unsupported(target))
    }
}

/// Passage title and text by id.
#[cfg(any(feature = "lancedb", feature = "qdrant"))]
pub(crate) type Passages = std::collections::HashMap<String, (Option<String>, String)>;

/// What every engine writes: the checked vectors, their texts, and the record stored with them
/// (`build_seconds` 0: known only once written; [`write`] returns the real one).
#[cfg(any(feature = "lancedb", feature = "qdrant"))]
pub(crate) struct WriteInput {
    pub e: crate::search::Embeddings,
    pub texts: Passages,
    pub meta: IndexMeta,
}

/// Reads and checks the corpus and texts, and makes the table's record (the engine's vector index
/// resolved from `opts`: LanceDB IVF_SQ with llmql's IVF defaults, Qdrant HNSW).
#[cfg(any(feature = "lancedb", feature = "qdrant"))]
fn prepare(target: &DbTarget, corpus: &Path, opts: &DbWriteOptions) -> Result<WriteInput> {
    let encoder = super::encoder_meta(corpus)?;
    let e = crate::search::load_all(corpus)?;
    super::check_rows(corpus, &e, &encoder, opts.kind)?;
    let texts = match &opts.passages {
        Some(p) => read_passages(p)?,
        None => Passages::new(),
    };
    let with_text = e.ids.iter().filter(|id| texts.contains_key(*id)).count();
    if let Some(p) = &opts.passages {
        if with_text < e.rows() {
            tracing::warn!("{} of {} passages have no text in {}", e.rows() - with_text, e.rows(), p.display());
        }
    }
    let mut db = DbMeta {
        engine: target.engine,
        table: target.table.clone(),
        vector_index: "none".into(),
        lists: 0,
        nprobe: 0,
        rescore: 0,
        m: 0,
        ef_construction: 0,
        ef_search: 0,
        texts: with_text,
    };
    match opts.kind {
        IndexKind::Ivf => {
            let p = super::ivf::IvfParams { lists: opts.lists, nprobe: opts.nprobe, rescore: opts.rescore }
                .resolve(e.rows());
            (db.vector_index, db.lists, db.nprobe, db.rescore) = ("IVF_SQ".into(), p.lists, p.nprobe, p.rescore);
        }
        IndexKind::Hnsw => {
            (db.vector_index, db.m, db.ef_construction, db.ef_search) =
                ("HNSW".into(), opts.hnsw_m, opts.ef_construction, opts.ef_search);
        }
        IndexKind::Flat => {}
    }
    let meta = IndexMeta {
        format: super::FORMAT.into(),
        kind: opts.kind,
        dim: e.dim,
        metric: super::METRIC.into(),
        count: e.rows(),
        ids: "id".into(),
        vectors: "vector".into(),
        hnsw: None,
        ivf: None,
        database: Some(db),
        encoder,
        build_seconds: 0.0,
        llmql_version: env!("CARGO_PKG_VERSION").into(),
    };
    Ok(WriteInput { e, texts, meta })
}

/// Opens a table llmql wrote, checking its record against its rows.
pub fn open(target: &DbTarget) -> Result<(IndexMeta, DbIndex)> {
    match target.engine {
        #[cfg(feature = "lancedb")]
        Engine::LanceDb => {
            let (meta, t) = super::lancedb::LanceIndex::open(target)?;
            Ok((meta, DbIndex::LanceDb(t)))
        }
        #[cfg(feature = "qdrant")]
        Engine::Qdrant => {
            let (meta, t) = super::qdrant::QdrantIndex::open(target)?;
            Ok((meta, DbIndex::Qdrant(t)))
        }
        #[allow(unreachable_patterns)]
        _ => Err(unsupported(target)),
    }
}

/// Passage texts by id (JSON lines: `_id`, `text`, optional `title`).
#[cfg(any(feature = "lancedb", feature = "qdrant"))]
fn read_passages(path: &Path) -> Result<Passages> {
    let mut out = Passages::new();
    for r in crate::records::RecordReader::open(path)? {
        let r = r?;
        out.insert(r.id, (r.title, r.text));
    }
    Ok(out)
}

/// The database clients are async; llmql's calls block on a runtime of their own (so call them
/// outside async code, e.g. from `spawn_blocking`). Dropping shuts it down without blocking, so an
/// opened table may be dropped anywhere, async code included.
#[cfg(any(feature = "lancedb", feature = "qdrant"))]
pub(crate) struct Runtime(Option<tokio::runtime::Runtime>);

#[cfg(any(feature = "lancedb", feature = "qdrant"))]
impl Runtime {
    pub(crate) fn new() -> Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("llmql-db")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| Error::Other(format!("cannot start the database client's runtime: {e}")))
    }

    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.0.as_ref().expect("present until dropped").block_on(f)
    }
}

#[cfg(any(feature = "lancedb", feature = "qdrant"))]
impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A runtime for one write (see [`Runtime`]).
#[cfg(any(feature = "lancedb", feature = "qdrant"))]
pub(crate) fn runtime() -> Result<Runtime> {
    Runtime::new()
}

/// Reads llmql's record from a table's metadata; `None` when the table has none (not llmql's).
pub fn parse_record(target: &DbTarget, text: Option<&String>) -> Result<Option<IndexMeta>> {
    let Some(text) = text else { return Ok(None) };
    let meta: IndexMeta = serde_json::from_str(text)
        .map_err(|e| target.error(format!("metadata `{META_KEY}` is not llmql's index record: {e}")))?;
    if meta.format != super::FORMAT || meta.metric != super::METRIC || meta.database.is_none() {
        return Err(target.error(format!(
            "metadata `{META_KEY}`: format {:?}, metric {:?} (expected {:?}, {:?}, with a `database` field)",
            meta.format,
            meta.metric,
            super::FORMAT,
            super::METRIC
        )));
    }
    Ok(Some(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_are_refused() {
        let t = DbTarget::parse("lancedb:/data/lance", "msmarco").unwrap();
        assert_eq!((t.engine, t.uri.as_str(), t.table.as_str()), (Engine::LanceDb, "/data/lance", "msmarco"));
        assert_eq!(t.label(), "lancedb:/data/lance#msmarco");
        let t = DbTarget::parse("lancedb:s3://bucket/db", DEFAULT_TABLE).unwrap();
        assert_eq!(t.uri, "s3://bucket/db");
        let t = DbTarget::parse("qdrant:http://localhost:6334", "c").unwrap();
        assert_eq!((t.engine, t.uri.as_str()), (Engine::Qdrant, "http://localhost:6334"));
        for (db, table, want) in [
            ("/data/lance", "t", "expected ENGINE:URI"),
            ("milvus:/x", "t", "unknown database"),
            ("qdrant:", "t", "is empty"),
            ("lancedb:", "t", "is empty"),
            ("lancedb:/x", "", "--table"),
            ("lancedb:/x", "../up", "--table"),
            ("lancedb:/x", ".hidden", "--table"),
        ] {
            let e = DbTarget::parse(db, table).unwrap_err();
            assert!(e.contains(want), "{db} {table}: {e}");
        }
    }

    #[test]
    fn records_llmql_did_not_write_are_refused() {
        let t = DbTarget::parse("lancedb:/x", "t").unwrap();
        assert!(parse_record(&t, None).unwrap().is_none());
        let e = parse_record(&t, Some(&"{\"a\":1}".to_string())).unwrap_err().to_string();
        assert!(e.contains("lancedb:/x#t") && e.contains(META_KEY), "{e}");
    }
}
