//! Qdrant as an index store ([`super::db`]): `llmql index --db qdrant:http://HOST:6334`.
//!
//! [Qdrant](https://qdrant.tech/documentation/) is a vector database server (sharded and replicated
//! across nodes), reached here over gRPC with the official `qdrant-client` crate (API key from
//! `QDRANT_API_KEY` when set). One collection holds a corpus:
//!
//! ```text
//! point id   the row number (0..count) of the encode output
//! vector     the `encode` vector, distance Dot (Qdrant's score is the inner product itself)
//! payload    {"id": passage id, "title": ..., "text": ...} (title/text from --passages)
//! collection metadata `llmql.index`: llmql's record (index.json's fields + `database`), as JSON text
//! ```
//!
//! `kind: flat` searches exactly (`exact: true`: every point scored, the same top-K as a flat index
//! folder); `kind: hnsw` uses Qdrant's HNSW index (`--hnsw-m`, `--ef-construction`; `--ef-search`
//! per query, default the recorded one). Qdrant has no IVF index, so `kind: ivf` is refused.
//!
//! Replacing: a collection llmql wrote (its metadata holds the record) is deleted and written again;
//! one it did not write is never touched. Points are upserted in batches with `wait: true`, and a
//! collection whose exact point count disagrees with its record (an interrupted write) is refused at
//! open. The calls block on a runtime of their own ([`super::db::runtime`]).
use super::db::{parse_record, runtime, sort_hits, DbTarget, Hit, WriteInput, META_KEY};
use super::{IndexKind, IndexMeta, SearchEffort};
use crate::error::Result;
use qdrant_client::qdrant::{
    value::Kind, CountPointsBuilder, CreateCollectionBuilder, Distance, HnswConfigDiffBuilder, PointStruct,
    QueryPointsBuilder, SearchParamsBuilder, UpsertPointsBuilder, Value, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant};
use std::collections::HashMap;
use std::sync::Arc;

/// Points per upsert request.
const UPSERT_POINTS: usize = 1024;

fn client(target: &DbTarget) -> Result<Qdrant> {
    Qdrant::from_url(&target.uri)
        .api_key(std::env::var("QDRANT_API_KEY").ok())
        .timeout(std::time::Duration::from_secs(60))
        .skip_compatibility_check()
        .build()
        .map_err(|e| target.error(format!("cannot connect: {e}")))
}

fn string(v: &Value) -> Option<&str> {
    match &v.kind {
        Some(Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// The collection's llmql record; `Ok(None)`: the collection exists without one (not llmql's);
/// `Err`: it does not exist or cannot be read.
async fn record_of(c: &Qdrant, target: &DbTarget) -> Result<Option<IndexMeta>> {
    let info =
        c.collection_info(&target.table).await.map_err(|e| target.error(format!("cannot read the collection: {e}")))?;
    let meta = info.result.and_then(|r| r.config).map(|c| c.metadata).unwrap_or_default();
    let text = meta.get(META_KEY).map(|v| string(v).map(str::to_string).unwrap_or_else(|| v.to_string()));
    parse_record(target, text.as_ref())
}

/// See [`super::db::write`].
pub(crate) fn write(
    target: &DbTarget,
    input: WriteInput,
    on_progress: Arc<dyn Fn(usize, usize) + Send + Sync>,
) -> Result<IndexMeta> {
    let WriteInput { e, texts, meta } = input;
    let db = meta.database.as_ref().expect("prepare sets it");
    let (kind, m, ef_construction) = (meta.kind, db.m, db.ef_construction);
    let record = serde_json::to_string(&meta).map_err(|err| target.error(err))?;
    let c = client(target)?;
    runtime()?.block_on(async {
        let exists = c
            .collection_exists(&target.table)
            .await
            .map_err(|err| target.error(format!("cannot reach the server: {err}")))?;
        if exists {
            if record_of(&c, target).await?.is_none() {
                return Err(target.error(format!(
                    "the collection exists and was not written by llmql (no `{META_KEY}` metadata): not replacing it; \
                     delete it yourself or choose another --table"
                )));
            }
            c.delete_collection(&target.table).await.map_err(|err| target.error(format!("cannot delete: {err}")))?;
        }
        let mut vectors = VectorParamsBuilder::new(e.dim as u64, Distance::Dot);
        if kind == IndexKind::Hnsw {
            vectors =
                vectors.hnsw_config(HnswConfigDiffBuilder::default().m(m as u64).ef_construct(ef_construction as u64));
        }
        let metadata: HashMap<String, serde_json::Value> =
            HashMap::from([(META_KEY.to_string(), serde_json::Value::String(record))]);
        c.create_collection(CreateCollectionBuilder::new(&target.table).vectors_config(vectors).metadata(metadata))
            .await
            .map_err(|err| target.error(format!("cannot create the collection: {err}")))?;
        let rows = e.rows();
        for s in (0..rows).step_by(UPSERT_POINTS) {
            let end = (s + UPSERT_POINTS).min(rows);
            let points: Vec<PointStruct> = (s..end)
                .map(|i| {
                    let id = &e.ids[i];
                    let mut payload = Payload::new();
                    payload.insert("id", id.as_str());
                    if let Some((title, text)) = texts.get(id) {
                        if let Some(t) = title {
                            payload.insert("title", t.as_str());
                        }
                        payload.insert("text", text.as_str());
                    }
                    PointStruct::new(i as u64, e.row(i).to_vec(), payload)
                })
                .collect();
            c.upsert_points(UpsertPointsBuilder::new(&target.table, points).wait(true))
                .await
                .map_err(|err| target.error(format!("cannot write points {s}..{end}: {err}")))?;
            on_progress(end, rows);
        }
        Ok(())
    })?;
    Ok(meta)
}

/// An opened Qdrant collection.
pub struct QdrantIndex {
    rt: super::db::Runtime,
    client: Qdrant,
    target: DbTarget,
    meta: IndexMeta,
}

impl QdrantIndex {
    /// Opens a collection llmql wrote and checks its record against its vectors and points.
    pub fn open(target: &DbTarget) -> Result<(IndexMeta, Self)> {
        let rt = super::db::Runtime::new()?;
        let c = client(target)?;
        let meta = rt.block_on(async {
            let exists = c
                .collection_exists(&target.table)
                .await
                .map_err(|err| target.error(format!("cannot reach the server: {err}")))?;
            if !exists {
                return Err(target.error("no such collection (write it with `llmql index --db ... --table ...`)"));
            }
            let meta = record_of(&c, target).await?.ok_or_else(|| {
                target.error(format!("the collection was not written by llmql (no `{META_KEY}` metadata)"))
            })?;
            let n = c
                .count(CountPointsBuilder::new(&target.table).exact(true))
                .await
                .map_err(|err| target.error(format!("cannot count points: {err}")))?
                .result
                .map(|r| r.count as usize)
                .unwrap_or(0);
            if n != meta.count {
                return Err(target.error(format!(
                    "holds {n} points, its `{META_KEY}` says {}: the write was interrupted or the collection changed outside llmql",
                    meta.count
                )));
            }
            Ok(meta)
        })?;
        Ok((meta.clone(), Self { rt, client: c, target: target.clone(), meta }))
    }

    /// See [`super::db::DbIndex::search`].
    pub fn search(&self, query: &[f32], k: usize, effort: SearchEffort) -> Result<Vec<Hit>> {
        let target = &self.target;
        let db = self.meta.database.as_ref().expect("checked at open");
        let params = match self.meta.kind {
            IndexKind::Hnsw => {
                SearchParamsBuilder::default().hnsw_ef(effort.ef_search.unwrap_or(db.ef_search).max(k) as u64)
            }
            _ => SearchParamsBuilder::default().exact(true),
        };
        let request = QueryPointsBuilder::new(&target.table)
            .query(query.to_vec())
            .limit(k as u64)
            .with_payload(true)
            .params(params);
        let found = self
            .rt
            .block_on(self.client.query(request))
            .map_err(|err| target.error(format!("search failed: {err}")))?;
        let field = |p: &HashMap<String, Value>, name: &str| p.get(name).and_then(string).map(str::to_string);
        let mut hits = Vec::with_capacity(found.result.len());
        for point in found.result {
            let id = field(&point.payload, "id")
                .ok_or_else(|| target.error("a point without an `id` payload: not written by llmql"))?;
            hits.push(Hit {
                score: point.score,
                title: field(&point.payload, "title"),
                text: field(&point.payload, "text"),
                id,
            });
        }
        sort_hits(&mut hits);
        Ok(hits)
    }
}
