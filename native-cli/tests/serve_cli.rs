//! `llmql serve`: the endpoints' shapes and errors, dynamic batching that never changes a result
//! (N concurrent one-query requests = one `llmql encode` of the N queries), 503 under overload,
//! and a SIGTERM that finishes the requests in flight. Tiny fixture model, no network but loopback.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn llmql(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_llmql")).args(args).env("RUST_LOG", "warn").output().expect("run llmql");
    assert!(o.status.success(), "llmql {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

/// The tiny model + stage-2 adapter's passage embeddings of the fixture collection, as an index.
fn tiny_index(dir: &Path) -> PathBuf {
    let enc = dir.join("enc");
    let (model, adapter, corpus) =
        (fixture("tiny-llama"), fixture("stage2/adapter"), fixture("collection/corpus.jsonl"));
    llmql(&[
        "encode",
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--input",
        s(&corpus),
        "--kind",
        "passage",
        "--max-len",
        "64",
        "--output",
        s(&enc),
    ]);
    let idx = dir.join("idx");
    llmql(&["index", "--corpus", s(&enc), "--output", s(&idx)]);
    idx
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts `llmql serve --port 0 ARGS` and waits for its "listening on" line.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmql"));
        cmd.arg("serve")
            .args(["--port", "0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start llmql serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("llmql serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "binds loopback by default: {url}");
        Self { child, url }
    }

    fn get(&self, path: &str) -> (u16, String) {
        respond(ureq::get(&format!("{}{path}", self.url)).call())
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        respond(ureq::post(&format!("{}{path}", self.url)).set("content-type", "application/json").send_string(body))
    }

    fn json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let (c, t) = self.post(path, &body.to_string());
        (c, serde_json::from_str(&t).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {t}")))
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn respond(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap()),
        Err(ureq::Error::Status(c, resp)) => (c, resp.into_string().unwrap()),
        Err(e) => panic!("request failed: {e}"),
    }
}

fn vector(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The error body's type and message, checking the shape.
fn error_of(code: u16, body: &str, want: u16) -> (String, String) {
    assert_eq!(code, want, "{body}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("error body is not JSON: {body}"));
    assert_eq!(v["error"]["code"], want);
    (v["error"]["type"].as_str().unwrap().into(), v["error"]["message"].as_str().unwrap().into())
}

#[test]
fn endpoints_answer_in_their_shapes_and_refuse_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tiny_index(tmp.path());
    let corpus = fixture("collection/corpus.jsonl");
    // The model and adapter come from the index's record of its encoding.
    let srv = Server::start(
        &["--index", s(&idx), "--passages", s(&corpus), "--max-inputs", "4", "--max-request-bytes", "4096"],
        &[],
    );

    let (c, h) = srv.get("/health");
    assert_eq!(c, 200);
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["dim"], 64);
    assert_eq!(h["index"]["count"], 60);
    assert_eq!(h["index"]["kind"], "flat");
    assert_eq!(h["passage_max_len"], 64);
    assert!(h["adapter"].as_str().unwrap().ends_with("adapter"), "{h}");

    // OpenAI shape.
    let (c, v) = srv.json("/v1/embeddings", serde_json::json!({"input": "how do bees make honey", "model": "x"}));
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(v["data"][0]["index"], 0);
    let q = vector(&v["data"][0]["embedding"]);
    assert_eq!(q.len(), 64);
    assert!((q.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 5);
    let (_, many) =
        srv.json("/v1/embeddings", serde_json::json!({"input": ["a cat", "how do bees make honey", "rust"]}));
    assert_eq!(many["data"].as_array().unwrap().len(), 3);
    assert_eq!(many["data"][1]["index"], 1);
    assert!(
        max_diff(&vector(&many["data"][1]["embedding"]), &q) < 1e-5,
        "a row does not depend on its batch companions"
    );
    let (_, p) =
        srv.json("/v1/embeddings", serde_json::json!({"input": "how do bees make honey", "llmql_kind": "passage"}));
    assert!(max_diff(&vector(&p["data"][0]["embedding"]), &q) > 1e-3, "the passage template applies");
    let (_, b) =
        srv.json("/v1/embeddings", serde_json::json!({"input": "how do bees make honey", "encoding_format": "base64"}));
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b["data"][0]["embedding"].as_str().unwrap()).unwrap();
    let decoded: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(decoded, q);

    // TEI shape.
    let (c, t) = srv.json("/embed", serde_json::json!({"inputs": ["how do bees make honey", "a cat"]}));
    assert_eq!(c, 200);
    assert_eq!(t.as_array().unwrap().len(), 2);
    assert!(max_diff(&vector(&t[0]), &q) < 1e-5);

    // Search, both ways, with passage texts.
    let (c, r) = srv.json("/search", serde_json::json!({"query": "how do bees make honey", "k": 5}));
    assert_eq!(c, 200, "{r}");
    let hits = r["results"].as_array().unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0]["rank"], 1);
    assert!(hits.windows(2).all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()));
    assert!(!hits[0]["text"].as_str().unwrap().is_empty());
    let (c, g) = srv.get("/search?q=how%20do%20bees%20make%20honey&k=5");
    assert_eq!(c, 200);
    let g: serde_json::Value = serde_json::from_str(&g).unwrap();
    assert_eq!(g["results"], r["results"]);

    // Errors: JSON bodies with a 4xx.
    let (c, b) = srv.post("/v1/embeddings", "{not json");
    assert!(error_of(c, &b, 400).1.contains("not valid JSON"));
    let (c, b) = srv.post("/v1/embeddings", "{}");
    assert!(error_of(c, &b, 400).1.contains("`input`"));
    let (c, b) = srv.post("/v1/embeddings", r#"{"input": [1, 2, 3]}"#);
    assert!(error_of(c, &b, 400).1.contains("token ids"));
    let (c, b) = srv.post("/v1/embeddings", r#"{"input": []}"#);
    error_of(c, &b, 400);
    let (c, b) = srv.post("/v1/embeddings", r#"{"input": "x", "llmql_kind": "document"}"#);
    assert!(error_of(c, &b, 400).1.contains("llmql_kind"));
    let (c, b) = srv.post("/v1/embeddings", r#"{"input": "x", "dimensions": 8}"#);
    assert!(error_of(c, &b, 400).1.contains("dimensions"));
    let (c, b) = srv.post("/v1/embeddings", r#"{"input": ["a", "b", "c", "d", "e"]}"#);
    assert!(error_of(c, &b, 413).1.contains("--max-inputs"));
    let big = serde_json::json!({"input": "x".repeat(5000)}).to_string();
    let (c, b) = srv.post("/v1/embeddings", &big);
    error_of(c, &b, 413);
    let (c, b) = srv.post("/embed", r#"{"inputs": "x", "normalize": false}"#);
    assert!(error_of(c, &b, 400).1.contains("normalize"));
    let (c, b) = srv.post("/search", r#"{"query": "bees", "k": 0}"#);
    error_of(c, &b, 400);
    let (c, b) = srv.post("/search", r#"{"query": "bees", "k": "many"}"#);
    error_of(c, &b, 400);
    let (c, b) = srv.get("/search?k=3");
    assert!(error_of(c, &b, 400).1.contains("`q`"));
    let (c, b) = srv.get("/nowhere");
    assert_eq!(error_of(c, &b, 404).0, "not_found");
    let (c, b) = srv.get("/v1/embeddings");
    error_of(c, &b, 405);

    // Metrics and the page.
    let (c, m) = srv.get("/metrics");
    assert_eq!(c, 200);
    assert!(m.contains(r#"llmql_requests_total{endpoint="/v1/embeddings",status="200"}"#), "{m}");
    assert!(m.contains(r#"llmql_requests_total{endpoint="/v1/embeddings",status="400"}"#));
    for name in [
        "llmql_batch_size_bucket",
        "llmql_queue_duration_seconds_count",
        "llmql_encode_duration_seconds_sum",
        "llmql_process_resident_memory_bytes",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics");
    }
    let (c, page) = srv.get("/");
    assert_eq!(c, 200);
    assert!(page.contains("llmql serve") && page.contains("/search"));
}

#[test]
fn without_an_index_search_is_a_json_404_and_embeddings_work() {
    let srv = Server::start(&["--model", s(&fixture("tiny-llama"))], &[]);
    let (c, b) = srv.post("/search", r#"{"query": "bees"}"#);
    assert_eq!(error_of(c, &b, 404).0, "no_index");
    let (c, _) = srv.json("/v1/embeddings", serde_json::json!({"input": "bees"}));
    assert_eq!(c, 200);
}

#[test]
fn concurrent_single_queries_equal_one_encode_of_them_all() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, adapter) = (fixture("tiny-llama"), fixture("stage2/adapter"));
    let queries = fixture("collection/queries.jsonl");
    let enc = tmp.path().join("q");
    llmql(&[
        "encode",
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--input",
        s(&queries),
        "--kind",
        "query",
        "--max-len",
        "64",
        "--output",
        s(&enc),
    ]);
    let (want, rows, dim) = llmql_core::npy::read_f32_matrix(&enc.join("embeddings.npy")).unwrap();
    let texts: Vec<String> = std::fs::read_to_string(&queries)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts.len(), rows);
    // A long wait so that the concurrent requests are merged into few batches.
    let srv = Arc::new(Server::start(
        &["--model", s(&model), "--adapter", s(&adapter), "--query-max-len", "64", "--max-wait-ms", "300"],
        &[],
    ));
    let barrier = Arc::new(Barrier::new(texts.len()));
    let got: Vec<Vec<f32>> = std::thread::scope(|sc| {
        let hs: Vec<_> = texts
            .iter()
            .map(|t| {
                let (srv, barrier) = (srv.clone(), barrier.clone());
                sc.spawn(move || {
                    barrier.wait();
                    let (c, v) = srv.json("/v1/embeddings", serde_json::json!({"input": t}));
                    assert_eq!(c, 200, "{v}");
                    vector(&v["data"][0]["embedding"])
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, g) in got.iter().enumerate() {
        let d = max_diff(g, &want[i * dim..(i + 1) * dim]);
        assert!(d <= 1e-5, "query {i}: served vector differs from `llmql encode` by {d}");
    }
    let batches = srv.metric("llmql_batch_requests_count");
    let requests = srv.metric("llmql_batch_requests_sum");
    assert_eq!(requests as usize, texts.len());
    assert!(batches < texts.len() as f64, "{} requests in {batches} batches: nothing was batched", texts.len());
}

#[test]
fn over_max_concurrent_requests_get_503() {
    let srv = Arc::new(Server::start(
        &["--model", s(&fixture("tiny-llama")), "--max-concurrent", "2", "--max-wait-ms", "0"],
        &[("LLMQL_TEST_SERVE_DELAY_MS", "1500")],
    ));
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let answers: Vec<(u16, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (srv, barrier) = (srv.clone(), barrier.clone());
                sc.spawn(move || {
                    barrier.wait();
                    srv.post("/v1/embeddings", &serde_json::json!({"input": format!("query {i}")}).to_string())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = answers.iter().filter(|(c, _)| *c == 200).count();
    let busy: Vec<&(u16, String)> = answers.iter().filter(|(c, _)| *c == 503).collect();
    assert_eq!(ok + busy.len(), n, "{answers:?}");
    assert!(ok >= 2 && !busy.is_empty(), "{ok} answered, {} refused", busy.len());
    for (c, b) in &busy {
        assert_eq!(error_of(*c, b, 503).0, "overloaded");
    }
    assert_eq!(srv.metric("llmql_requests_rejected_total") as usize, busy.len());
    // Once the load is gone, the server answers again.
    let (c, _) = srv.post("/v1/embeddings", r#"{"input": "again"}"#);
    assert_eq!(c, 200);
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_cleanly() {
    let mut srv = Server::start(
        &["--model", s(&fixture("tiny-llama")), "--max-wait-ms", "0"],
        &[("LLMQL_TEST_SERVE_DELAY_MS", "1000")],
    );
    let url = srv.url.clone();
    let n = 3;
    let answers = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let url = url.clone();
                sc.spawn(move || {
                    respond(
                        ureq::post(&format!("{url}/v1/embeddings"))
                            .send_string(&format!(r#"{{"input": "query {i}"}}"#)),
                    )
                })
            })
            .collect();
        // Wait until all are admitted, then ask the server to stop.
        let start = Instant::now();
        loop {
            let (_, h) = srv.get("/health");
            let h: serde_json::Value = serde_json::from_str(&h).unwrap();
            if h["in_flight"] == n {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "requests never in flight: {h}");
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(srv.child.id() as i32, libc::SIGTERM) };
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    for (c, b) in &answers {
        assert_eq!(*c, 200, "an in-flight request was dropped at shutdown: {b}");
        let v: serde_json::Value = serde_json::from_str(b).unwrap();
        assert_eq!(vector(&v["data"][0]["embedding"]).len(), 64);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(st) = srv.child.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(ureq::get(&format!("{url}/health")).call().is_err(), "still answering after shutdown");
}

/// Copies a folder's files (one level) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn quickstart_shortcut_serves_its_model_adapter_corpus_and_texts() {
    // A quickstart output's layout: ql/ (stage-1 model), dense/ (adapter), embeddings/llmql/{passage,query}/,
    // collection/corpus.jsonl.
    let tmp = tempfile::tempdir().unwrap();
    let q = tmp.path().join("qs");
    copy_dir(&fixture("tiny-llama"), &q.join("ql"));
    copy_dir(&fixture("stage2/adapter"), &q.join("dense"));
    copy_dir(&fixture("collection"), &q.join("collection"));
    let corpus = q.join("collection/corpus.jsonl");
    llmql(&[
        "encode",
        "--model",
        s(&q.join("ql")),
        "--adapter",
        s(&q.join("dense")),
        "--input",
        s(&corpus),
        "--kind",
        "passage",
        "--max-len",
        "64",
        "--output",
        s(&q.join("embeddings/llmql/passage")),
    ]);
    let queries = q.join("collection/queries.jsonl");
    llmql(&[
        "encode",
        "--model",
        s(&q.join("ql")),
        "--adapter",
        s(&q.join("dense")),
        "--input",
        s(&queries),
        "--kind",
        "query",
        "--max-len",
        "48",
        "--output",
        s(&q.join("embeddings/llmql/query")),
    ]);
    let srv = Server::start(&["--quickstart", s(&q)], &[]);
    let (_, h) = srv.get("/health");
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    assert!(h["model"].as_str().unwrap().ends_with("ql") && h["adapter"].as_str().unwrap().ends_with("dense"), "{h}");
    assert_eq!(h["index"]["count"], 60);
    assert_eq!(h["passages"], 60);
    assert_eq!(h["query_max_len"], 48);
    assert_eq!(h["passage_max_len"], 64);
    let (c, r) = srv.json("/search", serde_json::json!({"query": "how do bees make honey", "k": 3}));
    assert_eq!(c, 200);
    assert!(!r["results"][0]["text"].as_str().unwrap().is_empty());
    // The query vector is the one `llmql encode` gives with the quickstart's settings.
    let first: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&queries).unwrap().lines().next().unwrap()).unwrap();
    let (want, _, dim) = llmql_core::npy::read_f32_matrix(&q.join("embeddings/llmql/query/embeddings.npy")).unwrap();
    let (_, v) = srv.json("/v1/embeddings", serde_json::json!({"input": first["text"]}));
    assert!(max_diff(&vector(&v["data"][0]["embedding"]), &want[..dim]) <= 1e-5);
}

/// `serve` and `encode`, both with defaults, give the same query vectors, also for queries longer
/// than the default query limit (64 tokens); and both follow what an adapter records (llmql.json).
#[test]
fn serve_with_defaults_equals_encode_with_defaults_and_both_follow_the_adapters_record() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("tiny-llama");
    // A one-word query and queries of up to ~200 words: with the template (45 tokens of the fixture's
    // tokenizer) the longer ones are cut at 64 tokens (or at 56).
    let words = "honey bees pollinate flowering plants in spring meadows";
    let mut texts: Vec<String> = (1..=6).map(|n| vec![words; n * n / 2 + 1].join(" ")).collect();
    texts[0] = "bees".into();
    let queries = tmp.path().join("long.jsonl");
    let lines: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{}\n", serde_json::json!({"_id": format!("q{i}"), "text": t})))
        .collect();
    std::fs::write(&queries, lines).unwrap();
    let encode = |adapter: &Path, out: &str| -> (Vec<f32>, usize, serde_json::Value) {
        let o = tmp.path().join(out);
        llmql(&[
            "encode",
            "--model",
            s(&model),
            "--adapter",
            s(adapter),
            "--input",
            s(&queries),
            "--kind",
            "query",
            "--output",
            s(&o),
        ]);
        let (v, _, dim) = llmql_core::npy::read_f32_matrix(&o.join("embeddings.npy")).unwrap();
        let meta = serde_json::from_str(&std::fs::read_to_string(o.join("meta.json")).unwrap()).unwrap();
        (v, dim, meta)
    };
    let served = |adapter: &Path| -> (Vec<Vec<f32>>, serde_json::Value) {
        let srv = Server::start(&["--model", s(&model), "--adapter", s(adapter)], &[]);
        let (c, v) = srv.json("/v1/embeddings", serde_json::json!({"input": texts}));
        assert_eq!(c, 200, "{v}");
        let rows = v["data"].as_array().unwrap().iter().map(|d| vector(&d["embedding"])).collect();
        let (_, h) = srv.get("/health");
        (rows, serde_json::from_str(&h).unwrap())
    };
    let check = |adapter: &Path, out: &str, want_len: usize| -> Vec<f32> {
        let (enc, dim, meta) = encode(adapter, out);
        assert_eq!(meta["max_len"], want_len, "encode's query limit");
        let (rows, health) = served(adapter);
        assert_eq!(health["query_max_len"], want_len, "serve's query limit: {health}");
        for (i, r) in rows.iter().enumerate() {
            let d = max_diff(r, &enc[i * dim..(i + 1) * dim]);
            assert!(d <= 1e-5, "query {i} ({} words): serve vs encode differ by {d}", texts[i].split(' ').count());
        }
        enc
    };
    let adapter = fixture("stage2/adapter");
    let plain = check(&adapter, "plain", llmql_core::defaults::QUERY_MAX_LEN);
    // The same adapter with a record of a shorter query limit.
    let recorded = tmp.path().join("adapter");
    copy_dir(&adapter, &recorded);
    let enc = llmql_core::trained_with::EncoderRecord { query_max_len: Some(56), ..Default::default() };
    llmql_core::trained_with::TrainedWith::new("train", Some(enc), None).write(&recorded).unwrap();
    let short = check(&recorded, "recorded", 56);
    let dim = plain.len() / texts.len();
    assert_eq!(plain[..dim], short[..dim], "a query that fits both limits is unchanged");
    assert!(max_diff(&plain[5 * dim..], &short[5 * dim..]) > 1e-3, "the long query is cut at 56 tokens");
}

/// `serve --db`: a LanceDB table written by `llmql index --db --passages` (a real embedded LanceDB in
/// a temporary folder) answers /search with the same ranking and scores as the index folder of the
/// same encoding, texts from the table itself (no --passages given to serve), and the model the
/// table's record names.
#[cfg(feature = "lancedb")]
#[test]
fn a_lancedb_table_serves_like_the_index_folder_with_its_stored_texts() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tiny_index(tmp.path());
    let db = format!("lancedb:{}", tmp.path().join("db").display());
    let corpus = fixture("collection/corpus.jsonl");
    llmql(&["index", "--corpus", s(&tmp.path().join("enc")), "--db", &db, "--passages", s(&corpus)]);
    let (model, adapter) = (fixture("tiny-llama"), fixture("stage2/adapter"));
    let local = Server::start(&["--model", s(&model), "--adapter", s(&adapter), "--index", s(&idx)], &[]);
    let table = Server::start(&["--db", &db, "--adapter", s(&adapter)], &[]);
    let (_, h) = table.get("/health");
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    assert_eq!(h["index"]["count"], 60, "{h}");
    assert!(h["index"]["path"].as_str().unwrap().ends_with("#passages"), "{h}");
    for q in ["how do bees make honey", "what causes rain"] {
        let body = serde_json::json!({"query": q, "k": 5});
        let ((c1, a), (c2, b)) = (local.json("/search", body.clone()), table.json("/search", body));
        assert_eq!((c1, c2), (200, 200), "{a} {b}");
        let (ra, rb) = (a["results"].as_array().unwrap(), b["results"].as_array().unwrap());
        assert_eq!(ra.len(), 5);
        for (x, y) in ra.iter().zip(rb) {
            assert_eq!(x["id"], y["id"], "{q}");
            assert!((x["score"].as_f64().unwrap() - y["score"].as_f64().unwrap()).abs() < 1e-5);
            assert!(x["text"].is_null(), "the folder server has no texts");
            assert!(!y["text"].as_str().unwrap().is_empty(), "the table's text: {y}");
        }
    }
}
