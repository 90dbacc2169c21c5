//! `llmql generate-queries` and `llmql filter-queries` end to end with the tiny fixture model: BEIR
//! queries + qrels (each query to its source passage), a seeded choice of passages, the BM25
//! consistency filter, a run killed part-way resuming to the same output, deterministic sampling,
//! and bad flags refused before any work.
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn llmql(args: &[&str], env: Option<(&str, &str)>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llmql"));
    c.args(args).env("RUST_LOG", "info");
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    c.output().expect("run llmql")
}

fn generate(out: &Path, extra: &[&str], env: Option<(&str, &str)>) -> std::process::Output {
    let (model, corpus) = (fixture("tiny-llama"), fixture("collection/corpus.jsonl"));
    let mut args = vec![
        "--threads",
        "1",
        "generate-queries",
        "--model",
        model.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--max-new-tokens",
        "8",
        "--batch-size",
        "1",
    ];
    args.extend_from_slice(extra);
    llmql(&args, env)
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn writes_beir_queries_and_their_source_qrels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen.jsonl");
    let o = generate(&out, &["--max-passages", "12"], None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("queries/s"), "generation speed is logged: {stderr}");
    let queries = lines(&out);
    assert_eq!(queries.len(), 12, "{queries:?}");
    let qrels = lines(&dir.path().join("gen.qrels.tsv"));
    assert_eq!(qrels[0], "query-id\tcorpus-id\tscore");
    assert_eq!(qrels.len(), 13);
    let corpus_ids: Vec<String> = lines(&fixture("collection/corpus.jsonl"))
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["_id"].as_str().unwrap().to_string())
        .collect();
    for (q, r) in queries.iter().zip(&qrels[1..]) {
        let v: serde_json::Value = serde_json::from_str(q).unwrap();
        let id = v["_id"].as_str().unwrap();
        assert!(!v["text"].as_str().unwrap().is_empty());
        let f: Vec<&str> = r.split('\t').collect();
        assert_eq!(f[0], id);
        assert_eq!(id, format!("gen-{}-0", f[1]), "the id names the source passage");
        assert!(corpus_ids.contains(&f[1].to_string()));
        assert_eq!(f[2], "1");
    }
    assert!(!dir.path().join(".gen.jsonl.llmql-journal").exists(), "the journal is removed at the end");
    // The same settings give the same queries; --per-passage with greedy decoding is refused.
    let again = dir.path().join("again.jsonl");
    assert!(generate(&again, &["--max-passages", "12"], None).status.success());
    assert_eq!(lines(&again), queries);
    let o = generate(&dir.path().join("x.jsonl"), &["--per-passage", "2"], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--sampling top-p"));
    assert!(!dir.path().join("x.jsonl").exists());
}

#[test]
fn a_killed_run_resumes_to_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.jsonl");
    let flags = ["--sampling", "top-p", "--per-passage", "2", "--max-passages", "30", "--seed", "3"];
    assert!(generate(&full, &flags, None).status.success());
    let want = lines(&full);
    assert!(want.len() > 30, "two sampled queries per passage (repeats left out): {}", want.len());
    let part = dir.path().join("part.jsonl");
    // One thread, batch 1: a chunk is 8 passages; abort (no cleanup) after the first.
    let o = generate(&part, &flags, Some(("LLMQL_TEST_ABORT_AFTER_CHUNK", "1")));
    assert!(!o.status.success());
    assert!(!part.exists(), "nothing looks complete");
    let journal = dir.path().join(".part.jsonl.llmql-journal");
    assert_eq!(lines(&journal).len(), 1 + 8, "the settings line and the first chunk");
    // A torn last line (killed mid-write) is dropped on resume.
    let mut j = std::fs::read_to_string(&journal).unwrap();
    j.push_str("{\"docid\": \"d1\", \"quer");
    std::fs::write(&journal, j).unwrap();
    let o = generate(&part, &flags, None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("resuming: 8 passages already done"), "{stderr}");
    assert_eq!(lines(&part), want, "resumed == uninterrupted");
    // Other settings do not resume an old journal: they start over.
    let o = generate(&part, &flags, Some(("LLMQL_TEST_ABORT_AFTER_CHUNK", "1")));
    assert!(!o.status.success());
    let o = generate(&part, &["--max-passages", "5"], None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("made with other settings; starting over"), "{stderr}");
    assert_eq!(lines(&part).len(), 5);
    let seed4 = dir.path().join("seed4.jsonl");
    let mut other = flags.to_vec();
    other[7] = "4";
    assert!(generate(&seed4, &other, None).status.success());
    assert_ne!(lines(&seed4), want, "another seed draws other queries");
}

#[test]
fn the_consistency_filter_keeps_queries_bm25_connects_to_their_passage() {
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.jsonl");
    assert!(generate(&all, &["--max-passages", "20"], None).status.success());
    let filtered = dir.path().join("filtered.jsonl");
    let o = generate(&filtered, &["--max-passages", "20", "--filter-top-k", "1"], None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    // The tiny random model writes random tokens: BM25 rarely finds the source first, so the
    // filter keeps a subset (maybe none: then the files are written empty, with a warning).
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("consistency filter (source passage in BM25's top 1): kept"), "{stderr}");
    let kept = lines(&filtered);
    assert!(kept.len() < lines(&all).len());
    assert!(kept.iter().all(|k| lines(&all).contains(k)), "the filter only removes queries");
    assert_eq!(lines(&dir.path().join("filtered.qrels.tsv")).len(), kept.len() + 1);

    // `filter-queries` with a constructed run: q1's passage first, q2's third, q3 missing.
    let q = dir.path().join("q.jsonl");
    std::fs::write(
        &q,
        "{\"_id\": \"q1\", \"text\": \"a\"}\n{\"_id\": \"q2\", \"text\": \"b\"}\n{\"_id\": \"q3\", \"text\": \"c\"}\n",
    )
    .unwrap();
    let qrels = dir.path().join("q.qrels.tsv");
    std::fs::write(&qrels, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n").unwrap();
    let run = dir.path().join("run.trec");
    std::fs::write(&run, "q1 Q0 d1 1 3.0 r\nq1 Q0 d2 2 2.0 r\nq2 Q0 d1 1 3.0 r\nq2 Q0 d3 2 2.0 r\nq2 Q0 d2 3 1.0 r\n")
        .unwrap();
    let kept = dir.path().join("kept.jsonl");
    let filter = |k: &str| {
        llmql(
            &[
                "filter-queries",
                "--queries",
                q.to_str().unwrap(),
                "--qrels",
                qrels.to_str().unwrap(),
                "--run",
                run.to_str().unwrap(),
                "--top-k",
                k,
                "--output",
                kept.to_str().unwrap(),
            ],
            None,
        )
    };
    assert!(filter("2").status.success());
    assert_eq!(lines(&kept), ["{\"_id\":\"q1\",\"text\":\"a\"}"]);
    assert_eq!(lines(&dir.path().join("kept.qrels.tsv")), ["query-id\tcorpus-id\tscore", "q1\td1\t1"]);
    assert!(filter("3").status.success());
    assert_eq!(lines(&kept).len(), 2);
    assert!(!filter("0").status.success());
}
