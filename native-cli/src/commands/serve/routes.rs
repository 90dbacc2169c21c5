//! The HTTP API of `llmql serve` (axum): request parsing and validation, admission control, JSON
//! errors, and the demo page.
//!
//! - `POST /v1/embeddings`: OpenAI's request and response (`input` a string or a list of strings;
//!   `encoding_format` `float` or `base64`), plus `llmql_kind` (`query`, the default, or `passage`:
//!   which template applies).
//! - `POST /embed`: Text Embeddings Inference's (`inputs`, `normalize`), answered with a list of vectors.
//! - `POST /search` (`{"query", "k"}`) and `GET /search?q=&k=`: ids, scores and passage texts.
//! - `GET /health`, `GET /metrics`, `GET /` (the demo page).
//!
//! Every error is JSON, `{"error": {"message", "type", "code"}}` (OpenAI's shape), with a 4xx for
//! a bad request and 503 when `--max-concurrent` requests are already in flight.
use super::batcher::{Encoded, Job};
use super::metrics::Metrics;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use llmql_core::index::{Index, SearchEffort};
use llmql_core::Kind;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// A passage's title and text, for search results.
pub struct Passage {
    pub title: Option<String>,
    pub text: String,
}

/// What every handler shares.
pub struct AppState {
    pub jobs: std::sync::mpsc::Sender<Job>,
    pub permits: Arc<Semaphore>,
    pub max_concurrent: usize,
    pub max_inputs: usize,
    pub max_k: usize,
    /// The server's `--nprobe` / `--ef-search` (a request may override either).
    pub effort: SearchEffort,
    pub normalize: bool,
    pub model_name: String,
    pub dim: usize,
    pub metrics: Arc<Metrics>,
    pub index: Option<Arc<Index>>,
    pub passages: HashMap<String, Passage>,
    /// Settings shown by `/health`.
    pub info: Value,
}

type Shared = Arc<AppState>;

/// An error answer: status, a machine-readable type, a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, kind: "invalid_request_error", message: message.into() }
    }
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "code": self.status.as_u16()}});
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

pub fn router(state: Shared, max_request_bytes: usize) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/embed", post(tei_embed))
        .route("/search", get(search_get).post(search_post))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint (see GET /health)") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .layer(axum::extract::DefaultBodyLimit::max(max_request_bytes))
        .with_state(state)
}

/// Counts every request by endpoint and status, and times it.
async fn track(State(s): State<Shared>, path: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let endpoint = path.map(|p| p.as_str().to_string()).unwrap_or_else(|| "other".into());
    let start = Instant::now();
    let r = next.run(req).await;
    s.metrics.requests.with_label_values(&[&endpoint, r.status().as_str()]).inc();
    s.metrics.request_seconds.with_label_values(&[&endpoint]).observe(start.elapsed().as_secs_f64());
    r
}

/// A slot among `--max-concurrent`; counted in flight while held.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

impl AppState {
    fn admit(&self) -> Result<Admitted, ApiError> {
        match self.permits.clone().try_acquire_owned() {
            Ok(p) => {
                self.metrics.in_flight.inc();
                Ok(Admitted { _permit: p, metrics: self.metrics.clone() })
            }
            Err(_) => {
                self.metrics.rejected.inc();
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    format!(
                        "server overloaded: {} requests in flight (--max-concurrent); retry later",
                        self.max_concurrent
                    ),
                ))
            }
        }
    }

    /// Encodes texts on the model thread (batched with whatever else is waiting).
    async fn encode(&self, kind: Kind, texts: Vec<String>) -> Result<Encoded, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job = Job { kind, texts, enqueued: Instant::now(), reply: tx };
        self.jobs.send(job).map_err(|_| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the model thread has stopped")
        })?;
        match rx.await {
            Ok(Ok(e)) => Ok(e),
            Ok(Err(m)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", m)),
            Err(_) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the model thread stopped before answering",
            )),
        }
    }

    fn check_inputs(&self, texts: &[String], field: &str) -> Result<(), ApiError> {
        if texts.is_empty() {
            return Err(ApiError::bad(format!("field `{field}`: the list is empty")));
        }
        if texts.len() > self.max_inputs {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!(
                    "field `{field}`: {} inputs, at most {} per request (--max-inputs)",
                    texts.len(),
                    self.max_inputs
                ),
            ));
        }
        Ok(())
    }
}

/// The request body as JSON: a 400 naming the line and column of a syntax error, 413 over the
/// body limit.
fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), "invalid_request_error", r.body_text()))?;
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad("the body must be a JSON object"));
    }
    Ok(v)
}

/// A string, or a list of strings.
fn texts(v: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::bad(format!("field `{field}`[{i}]: expected a string (token ids are not accepted)"))
                })
            })
            .collect(),
        Value::Null => Err(ApiError::bad(format!("field `{field}` is required"))),
        _ => Err(ApiError::bad(format!("field `{field}`: expected a string or a list of strings"))),
    }
}

fn kind_of(v: &Value) -> Result<Kind, ApiError> {
    match v.get("llmql_kind") {
        None | Some(Value::Null) => Ok(Kind::Query),
        Some(Value::String(s)) if s == "query" => Ok(Kind::Query),
        Some(Value::String(s)) if s == "passage" => Ok(Kind::Passage),
        Some(o) => Err(ApiError::bad(format!("field `llmql_kind`: expected \"query\" or \"passage\", got {o}"))),
    }
}

async fn openai_embeddings(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let v = parse_body(body)?;
    let inputs = texts(&v["input"], "input")?;
    s.check_inputs(&inputs, "input")?;
    let kind = kind_of(&v)?;
    let base64 = match v.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(o) => {
            return Err(ApiError::bad(format!("field `encoding_format`: expected \"float\" or \"base64\", got {o:?}")))
        }
    };
    match v.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(d) if d.as_u64() == Some(s.dim as u64) => {}
        Some(d) => {
            return Err(ApiError::bad(format!("field `dimensions`: this model gives {} dimensions, got {d}", s.dim)))
        }
    }
    let _slot = s.admit()?;
    let e = s.encode(kind, inputs).await?;
    let data: Vec<Value> = e
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": s.model_name,
        "usage": {"prompt_tokens": e.tokens, "total_tokens": e.tokens},
    })))
}

async fn tei_embed(State(s): State<Shared>, body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, ApiError> {
    let v = parse_body(body)?;
    let inputs = texts(&v["inputs"], "inputs")?;
    s.check_inputs(&inputs, "inputs")?;
    let kind = kind_of(&v)?;
    let normalize = match v.get("normalize") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(o) => return Err(ApiError::bad(format!("field `normalize`: expected true or false, got {o}"))),
    };
    if !normalize && s.normalize {
        return Err(ApiError::bad(
            "field `normalize`: this server returns L2-normalised vectors (start it with --no-normalize for raw ones)",
        ));
    }
    let _slot = s.admit()?;
    let mut e = s.encode(kind, inputs).await?;
    if normalize && !s.normalize {
        for v in &mut e.vectors {
            let n = llmql_core::index::dot::dot(v, v).sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= n);
        }
    }
    Ok(Json(json!(e.vectors)))
}

/// A search request, from JSON or the query string.
struct SearchRequest {
    query: String,
    k: usize,
    effort: SearchEffort,
}

fn count_field(v: Option<&Value>, field: &str) -> Result<Option<usize>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_u64() {
            Some(n) => Ok(Some(n as usize)),
            None => match x.as_str().and_then(|s| s.trim().parse::<usize>().ok()) {
                Some(n) => Ok(Some(n)),
                None => Err(ApiError::bad(format!("field `{field}`: expected a positive integer, got {x}"))),
            },
        },
    }
}

async fn search_post(State(s): State<Shared>, body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, ApiError> {
    let v = parse_body(body)?;
    let query = match &v["query"] {
        Value::String(q) => q.clone(),
        Value::Null => return Err(ApiError::bad("field `query` is required")),
        o => return Err(ApiError::bad(format!("field `query`: expected a string, got {o}"))),
    };
    let k = count_field(v.get("k"), "k")?.unwrap_or(10);
    let effort = SearchEffort {
        ef_search: count_field(v.get("ef_search"), "ef_search")?,
        nprobe: count_field(v.get("nprobe"), "nprobe")?,
    };
    search(s, SearchRequest { query, k, effort }).await
}

async fn search_get(
    State(s): State<Shared>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad(format!("invalid query string: {}", e.body_text())))?;
    let query = q.get("q").cloned().ok_or_else(|| ApiError::bad("parameter `q` is required"))?;
    let k = count_field(q.get("k").map(|x| Value::String(x.clone())).as_ref(), "k")?.unwrap_or(10);
    let field = |name: &str| count_field(q.get(name).map(|x| Value::String(x.clone())).as_ref(), name);
    let effort = SearchEffort { ef_search: field("ef_search")?, nprobe: field("nprobe")? };
    search(s, SearchRequest { query, k, effort }).await
}

async fn search(s: Shared, r: SearchRequest) -> Result<Json<Value>, ApiError> {
    let Some(index) = s.index.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_index",
            "this server has no index: start it with --index (or --quickstart)",
        ));
    };
    if r.query.trim().is_empty() {
        return Err(ApiError::bad("the query is empty"));
    }
    if r.k == 0 || r.k > s.max_k {
        return Err(ApiError::bad(format!("`k` must be in 1..={} (--max-k), got {}", s.max_k, r.k)));
    }
    if r.effort.ef_search == Some(0) || r.effort.nprobe == Some(0) {
        return Err(ApiError::bad("`ef_search` and `nprobe` must be at least 1"));
    }
    let _slot = s.admit()?;
    let t = Instant::now();
    let e = s.encode(Kind::Query, vec![r.query.clone()]).await?;
    let encode_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let vector = e.vectors.into_iter().next().unwrap_or_default();
    let k = r.k;
    let effort = SearchEffort {
        ef_search: r.effort.ef_search.or(s.effort.ef_search),
        nprobe: r.effort.nprobe.or(s.effort.nprobe),
    };
    let hits = tokio::task::spawn_blocking(move || index.search_hits(&vector, k, effort))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", format!("search task failed: {e}"))
        })?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e.to_string()))?;
    let search_secs = t.elapsed().as_secs_f64();
    s.metrics.search_seconds.observe(search_secs);
    let results: Vec<Value> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| {
            // The table's stored passage, else --passages.
            let p = s.passages.get(&h.id);
            let title = h.title.clone().or_else(|| p.and_then(|p| p.title.clone()));
            let text = h.text.clone().or_else(|| p.map(|p| p.text.clone()));
            json!({"rank": i + 1, "id": h.id, "score": h.score, "title": title, "text": text})
        })
        .collect();
    Ok(Json(json!({
        "query": r.query,
        "k": r.k,
        "results": results,
        "encode_ms": encode_ms,
        "search_ms": search_secs * 1e3,
    })))
}

async fn health(State(s): State<Shared>) -> Json<Value> {
    let mut v = s.info.clone();
    v["status"] = json!("ok");
    v["in_flight"] = json!(s.max_concurrent - s.permits.available_permits());
    Json(v)
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render())
}

async fn page() -> Html<&'static str> {
    Html(include_str!("../../../assets/serve/index.html"))
}
