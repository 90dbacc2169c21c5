//! `llmql serve`: the trained retriever as an HTTP service, after Hugging Face's
//! text-embeddings-inference (TEI): OpenAI- and TEI-shaped embedding endpoints with dynamic
//! batching, search over an index, health, Prometheus metrics and a demo page.
//!
//! - [`batcher`]: the model thread (Burn tensors stay on one thread) and its dynamic batching;
//! - [`routes`]: the HTTP API (axum), admission control (`--max-concurrent`, 503 beyond it),
//!   JSON errors;
//! - [`metrics`]: Prometheus text exposition.
//!
//! The server binds 127.0.0.1 unless `--host` says otherwise, and on SIGTERM (or Ctrl-C) stops
//! accepting connections, finishes the requests in flight, then exits 0.
mod batcher;
mod metrics;
mod routes;

use super::index::SearchEffortArgs;
use super::input_settings::{self, EncoderSettings, EncodingModelArgs, Source};
use anyhow::{bail, Context, Result};
use batcher::{BatchLimits, ModelWorker};
use clap::Args;
use llmql_backends::{run_on, DeviceSpec};
use llmql_core::index::Index;
use llmql_core::records::RecordReader;
use llmql_core::trained_with::EncoderRecord;
use llmql_core::{EncoderOptions, ModelSource};
use routes::{AppState, Passage};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The encoder flags of `llmql encode` (same names, meanings and defaults), as one flattened group;
/// where a flag is not given, the settings the index's corpus was encoded with apply (its
/// `meta.json`), so queries and passages meet in the same space.
#[derive(Args, Debug, Clone)]
pub struct ServeModelArgs {
    /// The model, its adapter, and the encoder's settings. Where a setting is not given: what the
    /// index's corpus was encoded with, else what the adapter or model was trained with
    /// (llmql.json), else `llmql encode`'s defaults.
    #[command(flatten)]
    pub encoding: EncodingModelArgs,
    /// flex | cpu | wgpu | wgpu:N | cuda | cuda:N
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Compute dtype: f32 | f16 | bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ServeModelArgs,
    /// Index to search: an `llmql index` folder, or an `llmql encode --kind passage` output
    /// (searched exactly). Without one, only the embedding endpoints work.
    #[arg(long, conflicts_with = "db")]
    pub index: Option<PathBuf>,
    /// Or a vector database table written by `llmql index --db` (its stored texts are returned
    /// with search results).
    #[command(flatten)]
    pub db: super::index::DbArgs,
    /// Passage texts (JSON lines: `_id`, `text`, optional `title`), returned with search results.
    #[arg(long)]
    pub passages: Option<PathBuf>,
    /// An `llmql quickstart` output folder: serves its trained retriever (model + adapter), its
    /// encoded corpus (exact search) and its passages, unless flags say otherwise.
    #[arg(long)]
    pub quickstart: Option<PathBuf>,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0 exposes the server, which has
    /// no authentication).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free port; the address is printed on stdout).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Tokens (unpadded) per dynamic batch; also the padded size of one forward pass.
    #[arg(long, default_value_t = 8192)]
    pub max_batch_tokens: usize,
    /// How long the first request of a batch waits for companions, in milliseconds.
    #[arg(long, default_value_t = 2)]
    pub max_wait_ms: u64,
    /// Encode/search requests in flight (queued or running) at most; more are answered 503.
    #[arg(long, default_value_t = 64)]
    pub max_concurrent: usize,
    /// Texts per embedding request at most (413 beyond).
    #[arg(long, default_value_t = 256)]
    pub max_inputs: usize,
    /// Largest `k` a search may ask for.
    #[arg(long, default_value_t = 1000)]
    pub max_k: usize,
    /// Request bodies larger than this are refused (413), in bytes.
    #[arg(long, default_value_t = 2 << 20)]
    pub max_request_bytes: usize,
    #[command(flatten)]
    pub effort: SearchEffortArgs,
}

/// A string field of the index's encoder settings.
fn meta_str<'a>(enc: &'a Value, key: &str) -> Option<&'a str> {
    enc.get(key).and_then(Value::as_str)
}

/// What an `llmql encode` meta.json records of the encoder's settings (a passage encoding's length
/// limit is the passages', a query encoding's the queries').
fn meta_record(meta: &Value) -> EncoderRecord {
    let max_len = meta.get("max_len").and_then(Value::as_u64).map(|v| v as usize);
    let kind = meta_str(meta, "kind");
    EncoderRecord {
        template: meta_str(meta, "template").and_then(|s| s.parse().ok()),
        query_max_len: max_len.filter(|_| kind == Some("query")),
        // Older indexes record no kind: their meta.json is a corpus's.
        passage_max_len: max_len.filter(|_| kind != Some("query")),
        truncation: meta_str(meta, "truncation").and_then(|s| s.parse().ok()),
        pooling: meta_str(meta, "pooling").and_then(|s| s.parse().ok()),
        normalize: meta.get("normalized").and_then(Value::as_bool),
    }
}

/// `DIR/embeddings/llmql/KIND/meta.json` of a quickstart output.
fn quickstart_meta(dir: &Path, kind: &str) -> Value {
    std::fs::read_to_string(dir.join(format!("embeddings/llmql/{kind}/meta.json")))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn load_passages(path: &Path) -> Result<HashMap<String, Passage>> {
    let mut out = HashMap::new();
    for r in RecordReader::open(path)? {
        let r = r?;
        out.insert(r.id, Passage { title: r.title, text: r.text });
    }
    Ok(out)
}

pub fn run(a: ServeArgs) -> Result<()> {
    if a.max_concurrent == 0 || a.max_inputs == 0 || a.max_k == 0 || a.max_batch_tokens == 0 {
        bail!("--max-concurrent, --max-inputs, --max-k and --max-batch-tokens must be at least 1");
    }
    let qs = a.quickstart.as_deref();
    if let Some(q) = qs {
        if !q.join("embeddings/llmql/passage").is_dir() {
            bail!(
                "{}: not a finished quickstart output (no embeddings/llmql/passage; run `llmql quickstart` first)",
                q.display()
            );
        }
    }
    let index_dir = a.index.clone().or_else(|| qs.map(|q| q.join("embeddings/llmql/passage")));
    let db = a.db.resolve()?;
    let t = std::time::Instant::now();
    let index = match (&db, &index_dir) {
        (Some(target), _) => Some((Index::open_db(target)?, format!("table {}", target.label()))),
        (None, Some(d)) => Some((
            Index::open(d).with_context(|| format!("{}: cannot open the index", d.display()))?,
            format!("index {}", d.display()),
        )),
        (None, None) => None,
    };
    let index = index.map(|(i, what)| {
        tracing::info!(
            "{what}: {} passages, {} dims, {} ({:.1}s)",
            i.len(),
            i.dim(),
            i.kind().name(),
            t.elapsed().as_secs_f64()
        );
        Arc::new(i)
    });
    let enc = index.as_ref().map(|i| i.meta.encoder.clone()).unwrap_or(Value::Null);
    let m = &a.model.encoding;
    let (device, dtype) = (&a.model.device, &a.model.dtype);
    // The model: given, else the one the index was encoded with (and then its adapter too).
    let (model, adapter) = match (&m.model, qs) {
        (Some(p), _) => (p.clone(), m.adapter.clone()),
        // A quickstart's own folders (its meta.json records paths as given on its command line).
        (None, Some(q)) if q.join("ql").is_dir() || meta_str(&enc, "model").is_none() => {
            let dense = q.join("dense");
            (q.join("ql"), m.adapter.clone().or_else(|| dense.join("adapter_config.json").is_file().then_some(dense)))
        }
        (None, _) => match meta_str(&enc, "model") {
            Some(p) => (PathBuf::from(p), m.adapter.clone().or_else(|| meta_str(&enc, "adapter").map(PathBuf::from))),
            None => {
                bail!("--model is required (the index records no model; or use --quickstart DIR)")
            }
        },
    };
    // Each setting: the flag, else the index's (its corpus's encoding), else a quickstart's query
    // encoding, else the adapter's and the model's llmql.json, else the defaults.
    let mut sources = Vec::new();
    if index.is_some() {
        sources.push(Source { name: "the index's meta.json".into(), record: meta_record(&enc) });
    }
    if let Some(q) = qs {
        let name = format!("{}", q.join("embeddings/llmql/query/meta.json").display());
        sources.push(Source { name, record: meta_record(&quickstart_meta(q, "query")) });
    }
    let adapter_dir = adapter.as_deref().map(llmql_core::lora::resolve_adapter_dir).transpose()?;
    sources.extend(input_settings::encoder_sources(&input_settings::trained_with(&model, adapter_dir.as_deref())?));
    let settings = input_settings::resolve_encoder("serve", &m.encoder, &m.lengths, &sources)?;
    let EncoderSettings { template, query_max_len, passage_max_len, truncation, pooling, normalize } = settings;
    // Settings that differ from the index's make queries land in another space: say so.
    if let Some(t) = meta_str(&enc, "truncation").filter(|t| *t != truncation.name()) {
        tracing::warn!("the index was encoded with --truncation {t}, serving with {}", truncation.name());
    }
    if enc.get("normalized").and_then(Value::as_bool).is_some_and(|n| n != normalize) {
        tracing::warn!(
            "the index's vectors were {}normalised, this server's are {}",
            if normalize { "not " } else { "" },
            if normalize { "" } else { "not" }
        );
    }
    if let Some(p) = meta_str(&enc, "model").filter(|p| Path::new(p) != model) {
        tracing::warn!("the index was encoded with model {p}, serving {}", model.display());
    }
    let device: DeviceSpec = device.parse()?;
    let dtype = super::parse_dtype(dtype)?;
    let passages_file = a.passages.clone().or_else(|| qs.map(|q| q.join("collection/corpus.jsonl")));
    let passages = match &passages_file {
        Some(p) => load_passages(p)?,
        None => HashMap::new(),
    };
    if let Some(i) = index.as_ref().filter(|i| !i.is_db()) {
        if !passages.is_empty() {
            let ids = std::fs::read_to_string(i.dir.join(&i.meta.ids)).unwrap_or_default();
            let missing = ids.lines().filter(|id| !passages.contains_key(*id)).count();
            if missing > 0 {
                tracing::warn!(
                    "{missing} of {} indexed passages have no text in {}",
                    i.len(),
                    passages_file.as_ref().unwrap().display()
                );
            }
        }
    }

    let ckpt = ModelSource::open(&model)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let (job_tx, job_rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let limits = BatchLimits {
        max_batch_tokens: a.max_batch_tokens,
        max_wait: Duration::from_millis(a.max_wait_ms),
        query_max_len,
        passage_max_len,
    };
    let worker = ModelWorker {
        ckpt,
        adapter: adapter.clone(),
        options: EncoderOptions { template, max_len: query_max_len, normalize, pooling, truncation },
        dtype,
        limits,
        jobs: job_rx,
        ready: ready_tx,
        metrics: metrics.clone(),
    };
    let model_thread = std::thread::Builder::new().name("llmql-model".into()).spawn(move || run_on(&device, worker))?;
    let dim = match ready_rx.recv() {
        Ok(r) => r?.dim,
        Err(_) => {
            return match model_thread.join() {
                Ok(Err(e)) => Err(e.into()),
                _ => bail!("the model thread stopped while loading"),
            }
        }
    };
    if let Some(i) = &index {
        if i.dim() != dim {
            bail!(
                "the index has {} dimensions, the model {} gives {dim}: serve it with the model it was encoded with",
                i.dim(),
                model.display()
            );
        }
    }
    let name =
        |p: &Path| p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| p.display().to_string());
    let model_name = match &adapter {
        Some(ad) => format!("{}+{}", name(&model), name(ad)),
        None => name(&model),
    };
    let info = json!({
        "model": model.display().to_string(),
        "adapter": adapter.as_ref().map(|p| p.display().to_string()),
        "dim": dim,
        "template": template.name(),
        "pooling": pooling.name(),
        "normalized": normalize,
        "query_max_len": query_max_len,
        "passage_max_len": passage_max_len,
        "truncation": truncation.name(),
        "index": index.as_ref().map(|i| json!({"kind": i.kind().name(), "count": i.len(), "dim": i.dim(), "path": i.dir.display().to_string()})),
        "passages": passages.len(),
        "max_concurrent": a.max_concurrent,
        "max_batch_tokens": a.max_batch_tokens,
        "llmql_version": env!("CARGO_PKG_VERSION"),
    });
    let state = Arc::new(AppState {
        jobs: job_tx,
        permits: Arc::new(tokio::sync::Semaphore::new(a.max_concurrent)),
        max_concurrent: a.max_concurrent,
        max_inputs: a.max_inputs,
        max_k: a.max_k,
        effort: a.effort.resolve()?,
        normalize,
        model_name,
        dim,
        metrics,
        index,
        passages,
        info,
    });
    let app = routes::router(state, a.max_request_bytes);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("llmql-http").build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", a.host, a.port))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!("listening on {addr}, reachable from other machines: llmql serve has no authentication");
        }
        // The one line a script (or a test) waits for.
        println!("llmql serve: listening on http://{addr}");
        use std::io::Write;
        std::io::stdout().flush()?;
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    // Every handler (and so every job sender) is gone: the model thread ends after its last batch.
    drop(rt);
    let _ = model_thread.join();
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C; axum then stops accepting and drains the requests in flight.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: no new connections; finishing the requests in flight");
}
