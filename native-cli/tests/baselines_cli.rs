//! `llmql bm25`, `llmql rerank-dirichlet` and `llmql mine-negatives` end to end on the fixture
//! collection (tests/fixtures/collection), with `llmql eval` scoring the BM25 run.
use llmql_core::bm25::{Analyzer, Bm25Index, Bm25Params};
use llmql_core::formats::{load_beir, read_tevatron};
use llmql_core::trec::{self, Qrels, Run};
use std::path::{Path, PathBuf};
use std::process::Command;

fn collection() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/collection")
}

fn llmql(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_llmql")).args(args).env("RUST_LOG", "warn").output().expect("run llmql")
}

fn ok(args: &[&str]) -> std::process::Output {
    let o = llmql(args);
    assert!(o.status.success(), "llmql {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
    o
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// nDCG@10 as trec_eval defines it, averaged over the judged queries.
fn ndcg10(qrels: &Qrels, run: &Run) -> f64 {
    let mut total = 0.0;
    for (qid, judged) in qrels {
        let mut e = run.get(qid).cloned().unwrap_or_default();
        trec::sort_entries(&mut e);
        let dcg: f64 = e
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, x)| judged.get(&x.docid).copied().unwrap_or(0).max(0) as f64 / ((i + 2) as f64).log2())
            .sum();
        let mut ideal: Vec<i32> = judged.values().copied().filter(|&g| g > 0).collect();
        ideal.sort_by(|a, b| b.cmp(a));
        let idcg: f64 = ideal.iter().take(10).enumerate().map(|(i, &g)| g as f64 / ((i + 2) as f64).log2()).sum();
        total += if idcg > 0.0 { dcg / idcg } else { 0.0 };
    }
    total / qrels.len() as f64
}

/// Checks the TREC run text: six columns, the tag, ranks 1.. per query, scores non-increasing.
fn check_run_text(text: &str, tag: &str, depth: usize) {
    let mut last: Option<(String, usize, f64)> = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 6, "{line}");
        assert_eq!((f[1], f[5]), ("Q0", tag), "{line}");
        let (rank, score): (usize, f64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        match &last {
            Some((q, r, sc)) if q == f[0] => {
                assert_eq!(rank, r + 1, "{line}");
                assert!(score <= *sc, "{line}");
            }
            _ => assert_eq!(rank, 1, "{line}"),
        }
        assert!(rank <= depth);
        last = Some((f[0].to_string(), rank, score));
    }
}

#[test]
fn bm25_run_then_eval_on_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let c = collection();
    let run_path = dir.path().join("bm25.trec");
    let test_qrels = c.join("qrels/test.tsv");
    ok(&[
        "bm25",
        "--corpus",
        s(&c),
        "--queries",
        s(&c.join("queries.jsonl")),
        "--qrels",
        s(&test_qrels),
        "--depth",
        "100",
        "--output",
        s(&run_path),
    ]);
    let text = std::fs::read_to_string(&run_path).unwrap();
    check_run_text(&text, "bm25", 100);
    let run = trec::read_run(&run_path).unwrap();
    assert_eq!(run.len(), 12, "only the test queries");

    // The same ranking and scores as the library.
    let ds = load_beir(&c, "test").unwrap();
    let index = Bm25Index::build_in_ram(&ds.corpus, Analyzer::default()).unwrap();
    let lib = index.search_all(&ds.queries, 100, Bm25Params::default(), &|| {}).unwrap();
    for (qid, e) in &lib {
        let got = &run[qid];
        assert_eq!(got.iter().map(|x| &x.docid).collect::<Vec<_>>(), e.iter().map(|x| &x.docid).collect::<Vec<_>>());
        for (g, w) in got.iter().zip(e) {
            assert!((g.score - w.score).abs() <= 1e-9 * w.score.abs().max(1.0), "{qid}: {} vs {}", g.score, w.score);
        }
    }

    // llmql eval agrees with an independent nDCG@10 on the run file.
    let want = ndcg10(&ds.qrels, &run);
    let o = ok(&["eval", "--qrels", s(&test_qrels), "--run", s(&run_path), "--json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    let got = find_number(&v, "nDCG@10").unwrap_or_else(|| panic!("no nDCG@10 in {v}"));
    eprintln!("BM25 (k1 0.9, b 0.4) on the fixture test split: nDCG@10 = {got:.4}");
    assert!((got - want).abs() < 1e-6, "eval {got} vs independent {want}");
    assert!(got > 0.7, "{got}");
}

/// The first number under key `key` anywhere in a JSON value (eval may nest per-metric values).
fn find_number(v: &serde_json::Value, key: &str) -> Option<f64> {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(x) = m.get(key).and_then(|x| x.as_f64()) {
                return Some(x);
            }
            m.values().find_map(|x| find_number(x, key))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_number(x, key)),
        _ => None,
    }
}

#[test]
fn bm25_reads_ms_marco_tsv_with_custom_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let ds = load_beir(&collection(), "test").unwrap();
    let coll = dir.path().join("collection.tsv");
    let queries = dir.path().join("queries.dev.tsv");
    std::fs::write(&coll, ds.corpus.iter().map(|r| format!("{}\t{}\n", r.id, r.text)).collect::<String>()).unwrap();
    std::fs::write(&queries, ds.queries.iter().map(|r| format!("{}\t{}\n", r.id, r.text)).collect::<String>()).unwrap();
    let out = dir.path().join("run.txt");
    ok(&[
        "bm25",
        "--corpus",
        s(&coll),
        "--queries",
        s(&queries),
        "--depth",
        "5",
        "--k1",
        "1.2",
        "--b",
        "0.75",
        "--tag",
        "mine",
        "--in-memory",
        "--output",
        s(&out),
    ]);
    check_run_text(&std::fs::read_to_string(&out).unwrap(), "mine", 5);
    let run = trec::read_run(&out).unwrap();
    let untitled: Vec<_> =
        ds.corpus.iter().map(|r| llmql_core::records::TextRecord { title: None, ..r.clone() }).collect();
    let index = Bm25Index::build_in_ram(&untitled, Analyzer::default()).unwrap();
    let lib = index.search_all(&ds.queries, 5, Bm25Params { k1: 1.2, b: 0.75 }, &|| {}).unwrap();
    for (qid, e) in &lib {
        assert_eq!(
            run[qid].iter().map(|x| &x.docid).collect::<Vec<_>>(),
            e.iter().map(|x| &x.docid).collect::<Vec<_>>()
        );
    }
}

#[test]
fn rerank_dirichlet_keeps_the_top_k_reordered() {
    let dir = tempfile::tempdir().unwrap();
    let c = collection();
    let bm25 = dir.path().join("bm25.trec");
    let ql = dir.path().join("ql.trec");
    ok(&["bm25", "--corpus", s(&c), "--queries", s(&c), "--depth", "50", "--in-memory", "--output", s(&bm25)]);
    ok(&[
        "rerank-dirichlet",
        "--corpus",
        s(&c.join("corpus.jsonl")),
        "--queries",
        s(&c.join("queries.jsonl")),
        "--run",
        s(&bm25),
        "--depth",
        "10",
        "--mu",
        "1000",
        "--output",
        s(&ql),
    ]);
    check_run_text(&std::fs::read_to_string(&ql).unwrap(), "ql-dirichlet", 10);
    let (a, b) = (trec::read_run(&bm25).unwrap(), trec::read_run(&ql).unwrap());
    assert_eq!(b.len(), 24);
    for (qid, e) in &b {
        let mut x: Vec<&String> = e.iter().map(|x| &x.docid).collect();
        let mut y: Vec<&String> = a[qid].iter().take(10).map(|x| &x.docid).collect();
        x.sort();
        y.sort();
        assert_eq!(x, y, "{qid}");
        assert!(e.iter().all(|x| x.score < 0.0), "log likelihoods are negative");
    }
}

#[test]
fn mine_negatives_writes_valid_tevatron_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let c = collection();
    let bm25 = dir.path().join("bm25.trec");
    let out = dir.path().join("train.jsonl");
    ok(&["bm25", "--corpus", s(&c), "--queries", s(&c), "--depth", "30", "--output", s(&bm25)]);
    let qrels_path = c.join("qrels/train.tsv");
    ok(&[
        "mine-negatives",
        "--train-queries",
        s(&c.join("queries.jsonl")),
        "--qrels",
        s(&qrels_path),
        "--run",
        s(&bm25),
        "--corpus",
        s(&c),
        "--depth",
        "20",
        "--skip-top",
        "2",
        "--count",
        "4",
        "--output",
        s(&out),
    ]);
    let examples = read_tevatron(&out).unwrap();
    assert_eq!(examples.len(), 12);
    let qrels = trec::read_qrels(&qrels_path).unwrap();
    let run = trec::read_run(&bm25).unwrap();
    for ex in &examples {
        let qid = ex.query_id.as_deref().unwrap();
        let judged = &qrels[qid];
        assert!(!ex.positive_passages.is_empty() && ex.positive_passages.iter().all(|p| judged[&p.docid] > 0));
        assert!(!ex.negative_passages.is_empty() && ex.negative_passages.len() <= 4);
        let ranked: Vec<&String> = run[qid].iter().map(|e| &e.docid).collect();
        for p in &ex.negative_passages {
            assert!(judged.get(&p.docid).is_none_or(|&g| g <= 0), "{qid}: positive {} mined as negative", p.docid);
            let rank = ranked.iter().position(|d| **d == p.docid).unwrap() + 1;
            assert!((3..=20).contains(&rank), "{qid}: {} at rank {rank}", p.docid);
            assert!(!p.text.is_empty() && !p.title.is_empty());
        }
    }
    // Each line is one JSON object with the Tevatron keys.
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for k in ["query_id", "query", "positive_passages", "negative_passages"] {
            assert!(v.get(k).is_some(), "{k} missing: {line}");
        }
    }
}

#[test]
fn bad_input_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let c = collection();
    let bad = dir.path().join("corpus.tsv");
    std::fs::write(&bad, "d1\tfine\nd2 no tab here\n").unwrap();
    let out = dir.path().join("run.trec");
    let o = llmql(&["bm25", "--corpus", s(&bad), "--queries", s(&c), "--depth", "5", "--output", s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("corpus.tsv, line 2") && err.contains("expected 2 tab-separated fields"), "{err}");
    assert!(!out.exists(), "no output on failure");

    let o = llmql(&[
        "mine-negatives",
        "--train-queries",
        s(&c),
        "--qrels",
        s(&c.join("qrels/train.tsv")),
        "--run",
        s(&bad),
        "--corpus",
        s(&c),
        "--depth",
        "5",
        "--skip-top",
        "5",
        "--output",
        s(&dir.path().join("t.jsonl")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("depth (5) must exceed skip-top (5)"), "{err}");
    assert!(!dir.path().join("t.jsonl").exists());
}
