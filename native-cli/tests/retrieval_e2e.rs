//! encode (sharded) -> search -> eval on the fixture collection with the tiny Llama checkpoint,
//! checked against an independent computation (transformers + numpy + ir-measures:
//! tests/fixtures/e2e/make_expected.py).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn llmql(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_llmql")).args(args).env("RUST_LOG", "warn").output().expect("run llmql");
    assert!(o.status.success(), "llmql {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn read_run(p: &Path) -> BTreeMap<String, Vec<(String, f64)>> {
    let mut m: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for l in std::fs::read_to_string(p).unwrap().lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.len(), 6, "bad run line {l:?}");
        let rank: usize = f[3].parse().unwrap();
        let e = m.entry(f[0].to_string()).or_default();
        assert_eq!(rank, e.len() + 1, "ranks must count from 1 in order");
        e.push((f[2].to_string(), f[4].parse().unwrap()));
    }
    m
}

#[test]
fn encode_search_eval_matches_independent_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let model = fixture("tiny-llama");
    let model = model.to_str().unwrap();
    let coll = fixture("collection");
    let corpus = coll.join("corpus.jsonl");
    let queries = coll.join("queries.jsonl");
    // The independent pipeline truncates as transformers does: the reference's whole-string cut.
    let common = ["--model", model, "--max-len", "64", "--batch-size", "7", "--truncation", "reference"];
    for shard in ["0/2", "1/2"] {
        let mut a = vec!["encode", "--input", corpus.to_str().unwrap(), "--kind", "passage", "--output"];
        let out = d("corpus");
        a.push(&out);
        a.extend(common);
        a.extend(["--shard", shard]);
        llmql(&a);
    }
    let mut a = vec!["encode", "--input", corpus.to_str().unwrap(), "--kind", "passage", "--output"];
    let whole = d("corpus-whole");
    a.push(&whole);
    a.extend(common);
    llmql(&a);
    let mut a = vec!["encode", "--input", queries.to_str().unwrap(), "--kind", "query", "--output"];
    let qout = d("queries");
    a.push(&qout);
    a.extend(common);
    llmql(&a);

    // Shards are contiguous slices: together they equal the unsharded encoding.
    let (s0, r0, dim) = llmql_core::npy::read_f32_matrix(&dir.path().join("corpus/embeddings.0.npy")).unwrap();
    let (s1, r1, _) = llmql_core::npy::read_f32_matrix(&dir.path().join("corpus/embeddings.1.npy")).unwrap();
    let (w, rw, _) = llmql_core::npy::read_f32_matrix(&dir.path().join("corpus-whole/embeddings.npy")).unwrap();
    assert_eq!((r0, r1, rw), (30, 30, 60));
    let joined: Vec<f32> = s0.into_iter().chain(s1).collect();
    let diff = joined.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff <= 1e-6, "sharded vs whole: {diff}");
    assert_eq!(dim, 64);
    let ids0 = std::fs::read_to_string(dir.path().join("corpus/ids.0.txt")).unwrap();
    assert!(ids0.starts_with("d01\n"));

    let run_path = d("run.trec");
    llmql(&["search", "--queries", &qout, "--corpus", &d("corpus"), "--depth", "20", "--output", &run_path]);
    let ours = read_run(Path::new(&run_path));
    let reference = read_run(&fixture("e2e/reference.trec"));
    assert_eq!(ours.len(), 24);
    for (q, want) in &reference {
        let got = &ours[q];
        let got_ids: Vec<&str> = got.iter().map(|x| x.0.as_str()).collect();
        let want_ids: Vec<&str> = want.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(got_ids, want_ids, "query {q}: ranking differs from the reference pipeline");
        for (g, w) in got.iter().zip(want) {
            assert!((g.1 - w.1).abs() < 1e-4, "query {q} doc {}: score {} vs {}", g.0, g.1, w.1);
        }
    }

    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("e2e/expected.json")).unwrap()).unwrap();
    let qrels = coll.join("qrels/test.tsv");
    let json = llmql(&[
        "eval",
        "--qrels",
        qrels.to_str().unwrap(),
        "--run",
        &run_path,
        "--metrics",
        "nDCG@10,RR@10,R@20,AP",
        "--json",
    ]);
    let got: serde_json::Value = serde_json::from_str(&json).unwrap();
    for (name, want) in expected["metrics"].as_object().unwrap() {
        let g = got[name].as_f64().unwrap_or_else(|| panic!("eval output lacks {name}: {json}"));
        assert!((g - want.as_f64().unwrap()).abs() <= 1e-6, "{name}: {g} vs {want}");
    }
}
