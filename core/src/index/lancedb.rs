//! LanceDB as an index store ([`super::db`]): `llmql index --db lancedb:URI`.
//!
//! [LanceDB](https://lancedb.github.io/lancedb/) runs in process (no server): a table is a Lance
//! dataset in a folder or under an object-store URI, so the same table can be written by one job
//! and searched by many serving nodes. One table holds a corpus:
//!
//! ```text
//! id      utf8, not null                     the passage id (`ids.txt` of an index folder)
//! vector  fixed_size_list<float32>[dim]      the `encode` vector
//! title   utf8, nullable                     from --passages, when given
//! text    utf8, nullable
//! schema metadata `llmql.index`              llmql's record (index.json's fields + `database`)
//! ```
//!
//! `kind: flat` searches every row exactly (LanceDB's flat scan, `bypass_vector_index`) with
//! LanceDB's `dot` distance, `1 - <q, v>`, turned back into the inner product; `kind: ivf` builds
//! LanceDB's IVF_SQ index (k-means cells, 8-bit scalar-quantised rows) with llmql's IVF defaults for
//! cells and cells scanned, and re-ranks `rescore` candidates with the stored f32 vectors
//! (`refine_factor`), as llmql's own [`super::ivf`] does.
//!
//! The table is written by one `create_table` call in overwrite mode, so readers see the old table
//! or the whole new one; the IVF index is a second commit, and a table whose record says `ivf` but
//! holds no vector index is refused at open (the build did not finish). LanceDB is async; these
//! functions block on a runtime of their own (call them outside async code, e.g. from
//! `spawn_blocking`).
use super::db::{parse_record, runtime, sort_hits, DbTarget, Hit, Passages, WriteInput, META_KEY};
use super::{IndexKind, IndexMeta, SearchEffort};
use crate::error::{Error, Result};
use crate::search::Embeddings;
use ::lancedb::query::{ExecutableQuery, QueryBase, Select};
use arrow_array::{Array, FixedSizeListArray, Float32Array, RecordBatch, RecordBatchIterator, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::sync::Arc;

const ID: &str = "id";
const VECTOR: &str = "vector";
const TITLE: &str = "title";
const TEXT: &str = "text";
const DISTANCE: &str = "_distance";
/// Rows per Arrow batch written.
const BATCH_ROWS: usize = 16_384;

fn lance_err<'a>(target: &'a DbTarget, what: &str) -> impl Fn(::lancedb::Error) -> Error + use<'a> {
    let what = what.to_string();
    move |e| target.error(format!("{what}: {e}"))
}

async fn connect(target: &DbTarget) -> Result<::lancedb::Connection> {
    ::lancedb::connect(&target.uri).execute().await.map_err(lance_err(target, "cannot open the database"))
}

/// The table, if it exists.
async fn open_table(db: &::lancedb::Connection, target: &DbTarget) -> Result<Option<::lancedb::Table>> {
    match db.open_table(&target.table).execute().await {
        Ok(t) => Ok(Some(t)),
        Err(::lancedb::Error::TableNotFound { .. }) => Ok(None),
        Err(e) => Err(target.error(format!("cannot open the table: {e}"))),
    }
}

async fn record_of(table: &::lancedb::Table, target: &DbTarget) -> Result<(SchemaRef, Option<IndexMeta>)> {
    let schema = table.schema().await.map_err(lance_err(target, "cannot read the table's schema"))?;
    let meta = parse_record(target, schema.metadata().get(META_KEY))?;
    Ok((schema, meta))
}

fn schema(dim: usize, record: &IndexMeta) -> Result<SchemaRef> {
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let text = serde_json::to_string(record).map_err(|e| Error::Other(e.to_string()))?;
    Ok(Arc::new(Schema::new_with_metadata(
        vec![
            Field::new(ID, DataType::Utf8, false),
            Field::new(VECTOR, DataType::FixedSizeList(item, dim as i32), false),
            Field::new(TITLE, DataType::Utf8, true),
            Field::new(TEXT, DataType::Utf8, true),
        ],
        HashMap::from([(META_KEY.to_string(), text)]),
    )))
}

/// Rows `[start, end)` as one Arrow batch.
fn batch(
    schema: &SchemaRef,
    e: &Embeddings,
    texts: &Passages,
    start: usize,
    end: usize,
) -> Result<RecordBatch, ArrowError> {
    let ids = &e.ids[start..end];
    let values = Float32Array::from(e.values[start * e.dim..end * e.dim].to_vec());
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let vectors = FixedSizeListArray::try_new(item, e.dim as i32, Arc::new(values), None)?;
    let passage = |id: &String| texts.get(id);
    let titles: StringArray = ids.iter().map(|id| passage(id).and_then(|p| p.0.as_deref())).collect();
    let bodies: StringArray = ids.iter().map(|id| passage(id).map(|p| p.1.as_str())).collect();
    RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from_iter_values(ids)), Arc::new(vectors), Arc::new(titles), Arc::new(bodies)],
    )
}

/// See [`super::db::write`].
pub(crate) fn write(
    target: &DbTarget,
    input: WriteInput,
    on_progress: Arc<dyn Fn(usize, usize) + Send + Sync>,
) -> Result<IndexMeta> {
    let WriteInput { e, texts, meta } = input;
    let db_meta = meta.database.as_ref().expect("prepare sets it");
    let (kind, lists) = (meta.kind, db_meta.lists);
    let rt = runtime()?;
    rt.block_on(async {
        let db = connect(target).await?;
        if let Some(t) = open_table(&db, target).await? {
            if record_of(&t, target).await?.1.is_none() {
                return Err(target.error(format!(
                    "the table exists and was not written by llmql (no `{META_KEY}` metadata): not replacing it; \
                     drop it yourself or choose another --table"
                )));
            }
        }
        let schema = schema(e.dim, &meta)?;
        let e = Arc::new(e);
        let texts = Arc::new(texts);
        let rows = e.rows();
        let batches = {
            let (schema, e) = (schema.clone(), e.clone());
            (0..rows.div_ceil(BATCH_ROWS)).map(move |b| {
                let (s, t) = (b * BATCH_ROWS, ((b + 1) * BATCH_ROWS).min(rows));
                let out = batch(&schema, &e, &texts, s, t);
                on_progress(t, rows);
                out
            })
        };
        let reader: Box<dyn arrow_array::RecordBatchReader + Send> =
            Box::new(RecordBatchIterator::new(batches, schema));
        let table = db
            .create_table(&target.table, reader)
            .mode(::lancedb::database::CreateTableMode::Overwrite)
            .execute()
            .await
            .map_err(lance_err(target, "cannot write the table"))?;
        if kind == IndexKind::Ivf {
            tracing::info!("building LanceDB's IVF_SQ index ({lists} cells) on {rows} rows");
            let builder = ::lancedb::index::vector::IvfSqIndexBuilder::default()
                .distance_type(::lancedb::DistanceType::Dot)
                .num_partitions(lists as u32);
            table
                .create_index(&[VECTOR], ::lancedb::index::Index::IvfSq(builder))
                .execute()
                .await
                .map_err(lance_err(target, "cannot build the IVF_SQ index"))?;
        }
        Ok(())
    })?;
    Ok(meta)
}

/// An opened LanceDB table.
pub struct LanceIndex {
    rt: super::db::Runtime,
    table: ::lancedb::Table,
    target: DbTarget,
    meta: IndexMeta,
}

impl LanceIndex {
    /// Opens a table llmql wrote and checks its record against its schema, rows and index.
    pub fn open(target: &DbTarget) -> Result<(IndexMeta, Self)> {
        let rt = runtime()?;
        let (meta, table) = rt.block_on(async {
            let db = connect(target).await?;
            let table = open_table(&db, target)
                .await?
                .ok_or_else(|| target.error("no such table (write it with `llmql index --db ... --table ...`)"))?;
            let (schema, meta) = record_of(&table, target).await?;
            let meta = meta.ok_or_else(|| {
                target.error(format!("the table was not written by llmql (no `{META_KEY}` metadata)"))
            })?;
            let dim = match schema.field_with_name(VECTOR).map(|f| f.data_type().clone()) {
                Ok(DataType::FixedSizeList(_, d)) => d as usize,
                _ => return Err(target.error(format!("column `{VECTOR}`: missing or not a fixed-size list"))),
            };
            let rows = table.count_rows(None).await.map_err(lance_err(target, "cannot count rows"))?;
            if dim != meta.dim || rows != meta.count {
                return Err(target.error(format!(
                    "holds {rows} rows of dimension {dim}, its `{META_KEY}` says {} of {}: the table was changed outside llmql",
                    meta.count, meta.dim
                )));
            }
            if meta.kind == IndexKind::Ivf {
                let indices = table.list_indices().await.map_err(lance_err(target, "cannot list indexes"))?;
                if !indices.iter().any(|i| i.columns.iter().any(|c| c == VECTOR)) {
                    return Err(target.error(
                        "recorded as kind ivf but holds no vector index (its build did not finish): write it again",
                    ));
                }
            }
            Ok((meta, table))
        })?;
        let t = Self { rt, table, target: target.clone(), meta: meta.clone() };
        Ok((meta, t))
    }

    /// See [`super::db::DbIndex::search`].
    pub fn search(&self, query: &[f32], k: usize, effort: SearchEffort) -> Result<Vec<Hit>> {
        let target = &self.target;
        let db = self.meta.database.as_ref().expect("checked at open");
        let mut q = self
            .table
            .query()
            .nearest_to(query)
            .map_err(lance_err(target, "bad query vector"))?
            .distance_type(::lancedb::DistanceType::Dot)
            .limit(k)
            .select(Select::columns(&[ID, TITLE, TEXT]));
        q = match self.meta.kind {
            IndexKind::Ivf => q
                .nprobes(effort.nprobe.unwrap_or(db.nprobe).max(1))
                .map_err(lance_err(target, "bad nprobe"))?
                .refine_factor(db.rescore.div_ceil(k).max(1) as u32),
            _ => q.bypass_vector_index(),
        };
        let batches: Vec<RecordBatch> = self.rt.block_on(async {
            let stream = q.execute().await.map_err(lance_err(target, "search failed"))?;
            stream.try_collect().await.map_err(lance_err(target, "search failed"))
        })?;
        let mut hits = Vec::with_capacity(k);
        for b in &batches {
            let col = |name: &str| {
                b.column_by_name(name).ok_or_else(|| target.error(format!("search result has no column `{name}`")))
            };
            let strings = |name: &str| -> Result<StringArray> {
                col(name)?
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .cloned()
                    .ok_or_else(|| target.error(format!("column `{name}` is not utf8")))
            };
            let (ids, titles, texts) = (strings(ID)?, strings(TITLE)?, strings(TEXT)?);
            let dist = col(DISTANCE)?
                .as_any()
                .downcast_ref::<Float32Array>()
                .cloned()
                .ok_or_else(|| target.error(format!("column `{DISTANCE}` is not float32")))?;
            let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
            for i in 0..b.num_rows() {
                hits.push(Hit {
                    score: 1.0 - dist.value(i),
                    id: ids.value(i).to_string(),
                    title: opt(&titles, i),
                    text: opt(&texts, i),
                });
            }
        }
        sort_hits(&mut hits);
        hits.truncate(k);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::super::db::{write, DbWriteOptions};
    use super::*;
    use std::io::Write;
    use std::path::Path;

    /// An encode-like folder of `n` unit rows.
    fn corpus(dir: &Path, n: usize, dim: usize) -> Embeddings {
        std::fs::create_dir_all(dir).unwrap();
        let values: Vec<f32> = (0..n * dim).map(|i| ((i * 7919 % 1000) as f32 / 1000.0) - 0.5).collect();
        let mut e = Embeddings { ids: (0..n).map(|i| format!("p{i}")).collect(), values, dim };
        for r in e.values.chunks_mut(dim) {
            let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter_mut().for_each(|x| *x /= norm);
        }
        let f = std::fs::File::create(dir.join("embeddings.npy")).unwrap();
        let mut npy = crate::npy::NpyWriter::new(std::io::BufWriter::new(f), dim).unwrap();
        let mut ids = std::fs::File::create(dir.join("ids.txt")).unwrap();
        for i in 0..n {
            npy.write_row(e.row(i)).unwrap();
            writeln!(ids, "{}", e.ids[i]).unwrap();
        }
        npy.finish().unwrap();
        e
    }

    fn opts() -> DbWriteOptions {
        DbWriteOptions {
            kind: IndexKind::Flat,
            lists: 0,
            nprobe: 0,
            rescore: 0,
            hnsw_m: 16,
            ef_construction: 100,
            ef_search: 64,
            passages: None,
        }
    }

    #[test]
    fn tables_llmql_did_not_write_or_that_changed_outside_it_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let e = corpus(&tmp.path().join("enc"), 40, 8);
        let uri = format!("lancedb:{}", tmp.path().join("db").display());
        let rt = runtime().unwrap();

        // Someone else's table of the same name: neither replaced nor searched.
        let theirs = DbTarget::parse(&uri, "theirs").unwrap();
        rt.block_on(async {
            let db = connect(&theirs).await.unwrap();
            let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
            let b = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["a", "b"]))]).unwrap();
            db.create_table("theirs", b).execute().await.unwrap();
        });
        let err = write(&theirs, &tmp.path().join("enc"), &opts(), Arc::new(|_, _| {})).unwrap_err().to_string();
        assert!(err.contains("#theirs") && err.contains("not written by llmql"), "{err}");
        let err = LanceIndex::open(&theirs).err().expect("refused").to_string();
        assert!(err.contains("not written by llmql"), "{err}");
        let rows = rt.block_on(async {
            let db = connect(&theirs).await.unwrap();
            db.open_table("theirs").execute().await.unwrap().count_rows(None).await.unwrap()
        });
        assert_eq!(rows, 2, "their table is untouched");

        // llmql's table, searched exactly; then a row added outside llmql: refused at open.
        let mine = DbTarget::parse(&uri, "mine").unwrap();
        let meta = write(&mine, &tmp.path().join("enc"), &opts(), Arc::new(|_, _| {})).unwrap();
        let (opened, index) = LanceIndex::open(&mine).unwrap();
        assert_eq!((opened.count, opened.dim, opened.kind), (40, 8, IndexKind::Flat));
        assert_eq!(opened.database, meta.database);
        let hits = index.search(e.row(5), 3, SearchEffort::default()).unwrap();
        let want = super::super::flat_search(&e, e.row(5), 3);
        assert_eq!(
            hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>(),
            want.iter().map(|w| w.1.clone()).collect::<Vec<_>>()
        );
        for (h, w) in hits.iter().zip(&want) {
            assert!((h.score - w.0).abs() < 1e-5, "{} vs {}", h.score, w.0);
        }
        drop(index);
        rt.block_on(async {
            let db = connect(&mine).await.unwrap();
            let t = db.open_table("mine").execute().await.unwrap();
            let b = batch(&schema(8, &meta).unwrap(), &e, &HashMap::new(), 0, 1).unwrap();
            t.add(b).execute().await.unwrap();
        });
        let err = LanceIndex::open(&mine).err().expect("refused").to_string();
        assert!(err.contains("41 rows") && err.contains("changed outside llmql"), "{err}");
    }
}
