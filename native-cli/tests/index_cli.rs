//! `llmql index`: self-describing index folders written atomically; a flat index searches exactly
//! like the encode output it came from; IVF and HNSW indexes round-trip through their files and keep
//! recall@10 against exact search (IVF at its defaults, and exactly when told to scan everything);
//! bad input fails clearly and leaves nothing behind.
use llmql_core::npy::NpyWriter;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn llmql(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_llmql")).args(args).env("RUST_LOG", "warn").output().expect("run llmql")
}

fn ok(args: &[&str]) {
    let o = llmql(args);
    assert!(o.status.success(), "llmql {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

fn fails(args: &[&str]) -> String {
    let o = llmql(args);
    assert!(!o.status.success(), "llmql {args:?} should fail");
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!e.contains("panicked"), "{e}");
    e
}

/// query -> ranked docids of a TREC run file.
fn run_of(path: &Path) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        m.entry(f[0].to_string()).or_default().push(f[2].to_string());
    }
    m
}

fn recall_at(k: usize, got: &BTreeMap<String, Vec<String>>, exact: &BTreeMap<String, Vec<String>>) -> f64 {
    let mut hit = 0;
    for (q, want) in exact {
        let want: HashSet<&String> = want.iter().take(k).collect();
        hit += got[q].iter().take(k).filter(|d| want.contains(d)).count();
    }
    hit as f64 / (k * exact.len()) as f64
}

fn meta(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
}

#[test]
fn flat_and_hnsw_indexes_of_an_encoded_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (model, adapter) = (fixture("tiny-llama"), fixture("stage2/adapter"));
    let (enc, qenc) = (t.join("enc"), t.join("qenc"));
    ok(&[
        "encode",
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--input",
        s(&fixture("collection/corpus.jsonl")),
        "--kind",
        "passage",
        "--max-len",
        "64",
        "--output",
        s(&enc),
    ]);
    ok(&[
        "encode",
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--input",
        s(&fixture("collection/queries.jsonl")),
        "--kind",
        "query",
        "--max-len",
        "64",
        "--output",
        s(&qenc),
    ]);

    let flat = t.join("flat");
    ok(&["index", "--corpus", s(&enc), "--output", s(&flat)]);
    let m = meta(&flat);
    assert_eq!(m["format"], "llmql-index/1");
    assert_eq!(m["kind"], "flat");
    assert_eq!(m["dim"], 64);
    assert_eq!(m["metric"], "inner_product");
    assert_eq!(m["count"], 60);
    assert_eq!(m["encoder"]["model"], s(&model));
    assert_eq!(m["encoder"]["max_len"], 64);
    assert!(flat.join(".llmql-output").is_file());
    assert_eq!(
        std::fs::read_to_string(flat.join("ids.txt")).unwrap(),
        std::fs::read_to_string(enc.join("ids.txt")).unwrap()
    );

    // A flat index searches exactly like the encode output.
    let (exact_run, flat_run) = (t.join("exact.trec"), t.join("flat.trec"));
    ok(&["search", "--queries", s(&qenc), "--corpus", s(&enc), "--depth", "10", "--output", s(&exact_run)]);
    ok(&["search", "--queries", s(&qenc), "--corpus", s(&flat), "--depth", "10", "--output", s(&flat_run)]);
    assert_eq!(std::fs::read_to_string(&exact_run).unwrap(), std::fs::read_to_string(&flat_run).unwrap());

    let hnsw = t.join("hnsw");
    ok(&["index", "--corpus", s(&enc), "--output", s(&hnsw), "--kind", "hnsw", "--hnsw-m", "8"]);
    let m = meta(&hnsw);
    assert_eq!(m["kind"], "hnsw");
    assert_eq!(m["hnsw"]["m"], 8);
    let hnsw_run = t.join("hnsw.trec");
    ok(&["search", "--queries", s(&qenc), "--corpus", s(&hnsw), "--depth", "10", "--output", s(&hnsw_run)]);
    let (exact, got) = (run_of(&exact_run), run_of(&hnsw_run));
    assert_eq!(got.len(), exact.len());
    let r = recall_at(10, &got, &exact);
    assert!(r >= 0.95, "recall@10 {r} on 60 passages");

    // Rebuilding replaces the index; an existing folder that llmql did not write is never replaced.
    ok(&["index", "--corpus", s(&enc), "--output", s(&hnsw), "--kind", "flat"]);
    assert_eq!(meta(&hnsw)["kind"], "flat");
    assert!(!hnsw.join("hnsw.hnsw.graph").exists());
    let mine = t.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "x").unwrap();
    assert!(fails(&["index", "--corpus", s(&enc), "--output", s(&mine)]).contains("not written by llmql"));
    assert!(mine.join("notes.txt").exists());
    let names: Vec<String> =
        std::fs::read_dir(t).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert!(names.iter().all(|n| !n.contains("llmql-tmp")), "temporaries left: {names:?}");
}

/// `n` clustered unit vectors (`clusters` centres plus noise) as an encode-like folder.
fn write_synthetic(dir: &Path, n: usize, dim: usize, seed: u64, centres: &[Vec<f32>]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let f = std::fs::File::create(dir.join("embeddings.npy")).unwrap();
    let mut npy = NpyWriter::new(std::io::BufWriter::new(f), dim).unwrap();
    let mut ids = std::fs::File::create(dir.join("ids.txt")).unwrap();
    for i in 0..n {
        let c = &centres[(next() + 0.5).mul_add(centres.len() as f32, 0.0) as usize % centres.len()];
        let mut row: Vec<f32> = c.iter().map(|x| x + 0.5 * next()).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
        npy.write_row(&row).unwrap();
        writeln!(ids, "x{i}").unwrap();
    }
    npy.finish().unwrap();
}

#[test]
fn hnsw_recall_on_a_clustered_corpus_and_damaged_files() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dim = 48;
    let centres = centres(30, dim);
    let (corpus, queries) = (t.join("corpus"), t.join("queries"));
    write_synthetic(&corpus, 6000, dim, 1, &centres);
    write_synthetic(&queries, 100, dim, 2, &centres);
    let idx = t.join("idx");
    ok(&["index", "--corpus", s(&corpus), "--output", s(&idx), "--kind", "hnsw"]);
    assert_eq!(meta(&idx)["encoder"], serde_json::Value::Null);
    let (exact_run, hnsw_run) = (t.join("exact.trec"), t.join("hnsw.trec"));
    ok(&["search", "--queries", s(&queries), "--corpus", s(&corpus), "--depth", "10", "--output", s(&exact_run)]);
    ok(&["search", "--queries", s(&queries), "--corpus", s(&idx), "--depth", "10", "--output", s(&hnsw_run)]);
    let r = recall_at(10, &run_of(&hnsw_run), &run_of(&exact_run));
    assert!(r >= 0.9, "recall@10 {r}");
    // A tiny candidate list gives lower recall: the flag reaches the search.
    let low_run = t.join("low.trec");
    ok(&[
        "search",
        "--queries",
        s(&queries),
        "--corpus",
        s(&idx),
        "--depth",
        "10",
        "--ef-search",
        "10",
        "--output",
        s(&low_run),
    ]);
    assert!(recall_at(10, &run_of(&low_run), &run_of(&exact_run)) <= r);

    // A truncated graph file is refused with its name, not loaded (and no panic).
    let data = idx.join("hnsw.hnsw.data");
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&[
        "search",
        "--queries",
        s(&queries),
        "--corpus",
        s(&idx),
        "--depth",
        "10",
        "--output",
        s(&t.join("x.trec")),
    ]);
    assert!(e.contains("hnsw.hnsw.data") && e.contains("damaged"), "{e}");
    // An unknown format is refused naming the field.
    std::fs::write(&data, &bytes).unwrap();
    let m = std::fs::read_to_string(idx.join("index.json")).unwrap().replace("llmql-index/1", "llmql-index/9");
    std::fs::write(idx.join("index.json"), m).unwrap();
    let e = fails(&[
        "search",
        "--queries",
        s(&queries),
        "--corpus",
        s(&idx),
        "--depth",
        "10",
        "--output",
        s(&t.join("x.trec")),
    ]);
    assert!(e.contains("index.json") && e.contains("format"), "{e}");
}

fn centres(n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut state = 7u64;
    (0..n)
        .map(|_| {
            (0..dim)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        })
        .collect()
}

/// query -> (docid, score) of a TREC run file.
fn scored_run(path: &Path) -> BTreeMap<String, Vec<(String, f64)>> {
    let mut m: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        m.entry(f[0].to_string()).or_default().push((f[2].to_string(), f[4].parse().unwrap()));
    }
    m
}

/// Two run files hold the same queries, the same ranked ids, and scores within 1e-5.
fn same_ranking_and_scores(got: &Path, want: &Path) {
    let (got, want) = (scored_run(got), scored_run(want));
    assert_eq!(got.len(), want.len());
    for (q, w) in &want {
        let g = &got[q];
        assert_eq!(g.iter().map(|x| &x.0).collect::<Vec<_>>(), w.iter().map(|x| &x.0).collect::<Vec<_>>(), "{q}");
        for (a, b) in g.iter().zip(w) {
            assert!((a.1 - b.1).abs() < 1e-5, "{q}: {} vs {}", a.1, b.1);
        }
    }
}

#[test]
fn ivf_recall_at_its_defaults_exact_when_scanning_all_and_damaged_files() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dim = 48;
    let centres = centres(30, dim);
    let (corpus, queries) = (t.join("corpus"), t.join("queries"));
    write_synthetic(&corpus, 6000, dim, 1, &centres);
    write_synthetic(&queries, 100, dim, 2, &centres);
    let search = |idx: &Path, out: &Path, extra: &[&str]| {
        let mut args =
            vec!["search", "--queries", s(&queries), "--corpus", s(idx), "--depth", "10", "--output", s(out)];
        args.extend_from_slice(extra);
        ok(&args);
    };
    let exact_run = t.join("exact.trec");
    search(&corpus, &exact_run, &[]);

    // Defaults: no setting given.
    let idx = t.join("idx");
    ok(&["index", "--corpus", s(&corpus), "--output", s(&idx), "--kind", "ivf"]);
    let m = meta(&idx);
    assert_eq!(m["kind"], "ivf");
    assert_eq!(m["ivf"]["lists"], 155, "2 x sqrt(6000)");
    assert_eq!(m["ivf"]["rescore"], 200);
    assert_eq!(m["ivf"]["bytes"], std::fs::metadata(idx.join("ivf.bin")).unwrap().len());
    let ivf_run = t.join("ivf.trec");
    search(&idx, &ivf_run, &[]);
    let r = recall_at(10, &run_of(&ivf_run), &run_of(&exact_run));
    assert!(r >= 0.95, "recall@10 {r} at the defaults");
    // One cell scanned finds fewer: the flag reaches the search.
    let low_run = t.join("low.trec");
    search(&idx, &low_run, &["--nprobe", "1"]);
    let low = recall_at(10, &run_of(&low_run), &run_of(&exact_run));
    assert!(low < r, "nprobe 1: {low} vs default {r}");

    // Every cell scanned and every candidate re-scored: the exact ranking, with exact scores.
    let all = t.join("all");
    ok(&[
        "index",
        "--corpus",
        s(&corpus),
        "--output",
        s(&all),
        "--kind",
        "ivf",
        "--ivf-lists",
        "8",
        "--default-nprobe",
        "8",
        "--rescore",
        "6000",
    ]);
    let all_run = t.join("all.trec");
    search(&all, &all_run, &[]);
    same_ranking_and_scores(&all_run, &exact_run);

    // Refused with the file and the reason: a truncated cell file, a cell file from another index.
    let f = idx.join("ivf.bin");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 7]).unwrap();
    let x = t.join("x.trec");
    let e = fails(&["search", "--queries", s(&queries), "--corpus", s(&idx), "--depth", "10", "--output", s(&x)]);
    assert!(e.contains("ivf.bin") && e.contains("truncated"), "{e}");
    assert!(!x.exists());
    std::fs::copy(all.join("ivf.bin"), &f).unwrap();
    let mut m = meta(&idx);
    m["ivf"]["bytes"] = serde_json::json!(std::fs::metadata(&f).unwrap().len());
    std::fs::write(idx.join("index.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let e = fails(&["search", "--queries", s(&queries), "--corpus", s(&idx), "--depth", "10", "--output", s(&x)]);
    assert!(e.contains("ivf.bin") && e.contains("another index"), "{e}");
    // Vectors of another size than index.json says.
    std::fs::write(&f, &bytes).unwrap();
    let mut m = meta(&idx);
    m["ivf"]["bytes"] = serde_json::json!(bytes.len());
    m["count"] = serde_json::json!(5999);
    std::fs::write(idx.join("index.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let e = fails(&["search", "--queries", s(&queries), "--corpus", s(&idx), "--depth", "10", "--output", s(&x)]);
    assert!(e.contains("another index") || e.contains("5999"), "{e}");
    let e = fails(&["search", "--queries", s(&queries), "--corpus", s(&idx), "--nprobe", "0", "--output", s(&x)]);
    assert!(e.contains("--nprobe"), "{e}");
}

#[test]
fn hnsw_refuses_vectors_that_are_not_unit_length() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let enc = t.join("raw");
    ok(&[
        "encode",
        "--model",
        s(&fixture("tiny-llama")),
        "--input",
        s(&fixture("collection/corpus.jsonl")),
        "--kind",
        "passage",
        "--max-len",
        "64",
        "--no-normalize",
        "--output",
        s(&enc),
    ]);
    let out = t.join("idx");
    for kind in ["hnsw", "ivf"] {
        let e = fails(&["index", "--corpus", s(&enc), "--output", s(&out), "--kind", kind]);
        assert!(e.contains("normalise"), "{e}");
        assert!(!out.exists());
    }
    // Flat takes them (exact inner products).
    ok(&["index", "--corpus", s(&enc), "--output", s(&out)]);
    let e = fails(&["index", "--corpus", s(&t.join("missing")), "--output", s(&t.join("idx2"))]);
    assert!(e.contains("missing"), "{e}");
}

/// `scripts/encode-shards.sh`: N shards encoded by N independent processes, then indexed, give the
/// vectors and search results of one unsharded encode; a failing shard stops it with no index.
#[test]
fn sharded_encoding_script_then_index_equals_one_encode() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/encode-shards.sh");
    let (model, adapter) = (fixture("tiny-llama"), fixture("stage2/adapter"));
    let corpus = fixture("collection/corpus.jsonl");
    let common = ["--model", s(&model), "--adapter", s(&adapter), "--input", s(&corpus), "--max-len", "64"];
    let (whole, shards, idx) = (t.join("whole"), t.join("shards"), t.join("idx"));
    let mut args = vec!["encode", "--kind", "passage", "--output", s(&whole)];
    args.extend_from_slice(&common);
    ok(&args);
    let sh = |out: &Path, idx: &Path, extra: &[&str]| {
        let mut c = Command::new("bash");
        c.arg(&script).args(["3", s(out), "--index", s(idx), "--kind", "ivf", "--"]).args(extra);
        c.env("LLMQL", env!("CARGO_BIN_EXE_llmql")).env("RUST_LOG", "warn").output().unwrap()
    };
    let o = sh(&shards, &idx, &common);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for i in 0..3 {
        assert!(shards.join(format!("embeddings.{i}.npy")).is_file());
    }
    assert_eq!(meta(&idx)["count"], 60);
    assert_eq!(meta(&idx)["kind"], "ivf");
    let q = t.join("q");
    ok(&[
        "encode",
        "--model",
        s(&model),
        "--adapter",
        s(&adapter),
        "--input",
        s(&fixture("collection/queries.jsonl")),
        "--kind",
        "query",
        "--max-len",
        "64",
        "--output",
        s(&q),
    ]);
    let run = |corpus: &Path, name: &str| {
        let out = t.join(name);
        ok(&["search", "--queries", s(&q), "--corpus", s(corpus), "--depth", "10", "--output", s(&out)]);
        run_of(&out)
    };
    let want = run(&whole, "whole.trec");
    assert_eq!(run(&shards, "shards.trec"), want, "the shards hold the same vectors");
    // 60 passages: the IVF defaults scan every cell, so the index is exact here.
    assert_eq!(run(&idx, "idx.trec"), want);

    let bad_idx = t.join("bad-idx");
    let mut bad = common.to_vec();
    bad[1] = "/nonexistent/model";
    let o = sh(&t.join("bad"), &bad_idx, &bad);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("shard 0/3 failed"));
    assert!(!bad_idx.exists());
}

/// The database path: a flat table returns the exact ranking of the encode output (same ids, scores
/// within 1e-5); an approximate one (`approx`: LanceDB's IVF_SQ, Qdrant's HNSW) keeps recall@10 >= 0.95
/// at its defaults and honours its effort flag; a table llmql wrote is replaced, and bad targets fail
/// with a clear error and no output.
#[cfg(any(feature = "lancedb", feature = "qdrant"))]
fn database_tables_search_like_the_local_index(db: &str, prefix: &str, approx: &str, effort: Option<[&str; 2]>) {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dim = 32;
    let centres = centres(20, dim);
    let (corpus, queries) = (t.join("corpus"), t.join("queries"));
    write_synthetic(&corpus, 4000, dim, 3, &centres);
    write_synthetic(&queries, 60, dim, 4, &centres);
    std::fs::write(corpus.join("meta.json"), r#"{"model": "m", "template": "llmql", "normalized": true}"#).unwrap();
    let passages = t.join("passages.jsonl");
    let mut f = std::fs::File::create(&passages).unwrap();
    for i in 0..3990 {
        writeln!(f, r#"{{"_id": "x{i}", "title": "T{i}", "text": "passage {i}"}}"#).unwrap();
    }
    let table = |name: &str| format!("{prefix}{name}");
    let (flat, approx_table, small) = (table("flat"), table(approx), table("small"));
    let search = |out: &Path, extra: &[&str]| {
        let mut args = vec!["search", "--queries", s(&queries), "--depth", "10", "--output", s(out)];
        args.extend_from_slice(extra);
        ok(&args);
    };
    let exact_run = t.join("exact.trec");
    search(&exact_run, &["--corpus", s(&corpus)]);

    // flat: exactly the local ranking and scores.
    ok(&["index", "--corpus", s(&corpus), "--db", db, "--table", &flat, "--passages", s(&passages)]);
    let flat_run = t.join("flat.trec");
    search(&flat_run, &["--db", db, "--table", &flat]);
    same_ranking_and_scores(&flat_run, &exact_run);
    // Written again: llmql's own table is replaced.
    ok(&["index", "--corpus", s(&corpus), "--db", db, "--table", &flat, "--passages", s(&passages)]);

    // Approximate, at llmql's defaults; a tiny effort finds fewer.
    ok(&["index", "--corpus", s(&corpus), "--db", db, "--table", &approx_table, "--kind", approx]);
    let approx_run = t.join("approx.trec");
    search(&approx_run, &["--db", db, "--table", &approx_table]);
    let r = recall_at(10, &run_of(&approx_run), &run_of(&exact_run));
    assert!(r >= 0.95, "recall@10 {r} at the defaults");
    if let Some([flag, value]) = effort {
        let low_run = t.join("low.trec");
        search(&low_run, &["--db", db, "--table", &approx_table, flag, value]);
        let low = recall_at(10, &run_of(&low_run), &run_of(&exact_run));
        assert!(low < r, "{flag} {value}: {low} vs default {r}");
    }

    // Clear errors, no output left: no such table, unknown engine, a kind the engine lacks, both
    // --output and --db, a table of another dimension than the queries.
    let x = t.join("x.trec");
    let nope = table("nope");
    let e = fails(&["search", "--queries", s(&queries), "--db", db, "--table", &nope, "--output", s(&x)]);
    assert!(e.contains(&format!("#{nope}")) && e.contains("no such"), "{e}");
    let e = fails(&["search", "--queries", s(&queries), "--db", "milvus:/x", "--output", s(&x)]);
    assert!(e.contains("unknown database"), "{e}");
    let other_kind = if approx == "ivf" { "hnsw" } else { "ivf" };
    let e = fails(&["index", "--corpus", s(&corpus), "--db", db, "--table", &small, "--kind", other_kind]);
    assert!(e.contains(&format!("--kind {other_kind}")), "{e}");
    let e = fails(&["index", "--corpus", s(&corpus), "--output", s(&t.join("o")), "--db", db]);
    assert!(e.contains("--db") || e.contains("--output"), "{e}");
    let other = t.join("other");
    write_synthetic(&other, 50, 16, 5, &centres(3, 16));
    ok(&["index", "--corpus", s(&other), "--db", db, "--table", &small]);
    let e = fails(&["search", "--queries", s(&queries), "--db", db, "--table", &small, "--output", s(&x)]);
    assert!(e.contains("dimension"), "{e}");
    assert!(!x.exists());
}

/// On a real embedded LanceDB in a temporary folder.
#[cfg(feature = "lancedb")]
#[test]
fn lancedb_tables_search_like_the_local_index() {
    let tmp = tempfile::tempdir().unwrap();
    let db = format!("lancedb:{}", tmp.path().join("db").display());
    database_tables_search_like_the_local_index(&db, "", "ivf", Some(["--nprobe", "1"]));
}

/// On a real Qdrant server, where one runs: `LLMQL_QDRANT_URL=http://127.0.0.1:6334` (gRPC port;
/// collections `llmql_test_*` are written there). Skipped, saying so, where none is given.
#[cfg(feature = "qdrant")]
#[test]
fn qdrant_collections_search_like_the_local_index() {
    let Ok(url) = std::env::var("LLMQL_QDRANT_URL") else {
        eprintln!("skipped: no Qdrant server (set LLMQL_QDRANT_URL=http://HOST:6334 to run this test against one)");
        return;
    };
    // 4000 x 32 floats is below Qdrant's indexing threshold: its HNSW is not built and every search
    // scans all points, so a small --ef-search does not lower recall here.
    database_tables_search_like_the_local_index(&format!("qdrant:{url}"), "llmql_test_", "hnsw", None);
}
