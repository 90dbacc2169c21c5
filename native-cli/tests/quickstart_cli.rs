//! `llmql quickstart` end to end with the tiny fixture model and a tiny budget: every stage runs,
//! the results table has the five systems, the numbers equal `llmql eval` on the written runs, the
//! fusion weight is chosen on the dev queries and keeps the dense run's recall, and a run
//! interrupted inside a training stage picks up from the finished stages when restarted.
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn quickstart(out: &Path, env: Option<(&str, &str)>) -> std::process::Output {
    quickstart_with(out, env, &[])
}

fn quickstart_with(out: &Path, env: Option<(&str, &str)>, extra: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llmql"));
    c.args([
        "quickstart",
        "--model",
        fixture("tiny-llama").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--ql-steps",
        "2",
        "--train-steps",
        "2",
        "--rerank-depth",
        "10",
        "--passage-max-len",
        "64",
        "--synthetic-queries",
        "12",
        "--synthetic-filter-top-k",
        "0",
    ])
    .args(extra)
    .env("RUST_LOG", "warn");
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn quickstart_runs_every_stage_and_resumes_by_stage() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("qs");
    // Killed (process abort) right after stage 1's first step: stages before it are finished.
    let o = quickstart(&out, Some(("LLMQL_TEST_ABORT_AFTER_STEP", "1")));
    assert!(!o.status.success());
    for s in ["bm25", "zero-shot", "negatives"] {
        assert!(out.join(format!("stages/{s}.json")).exists(), "stage {s} should be finished");
    }
    assert!(!out.join("stages/ql.json").exists());
    assert!(!out.join("results.json").exists());

    let o = quickstart(&out, None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("BM25 baseline: done before"), "{stderr}");
    assert!(stderr.contains("zero-shot dense retrieval (untrained model): done before"), "{stderr}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    for row in [
        "| BM25 |",
        "| zero-shot dense |",
        "| LLM-QL dense (150 judged + 12 generated training queries) |",
        "| QL ranking of the dense top 10 (stage-1 model, ",
        "| LLM-QL dense + QL (weight ",
    ] {
        assert!(stdout.contains(row), "missing {row}:\n{stdout}");
    }
    assert!(stdout.contains("chosen on 40 dev queries)"), "{stdout}");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let rows = results["results"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    // Fusion reorders only the reranked depth: recall at 100 is the dense run's.
    assert_eq!(rows[2]["R@100"], rows[4]["R@100"], "{rows:?}");
    let fusion = &results["fusion"];
    assert_eq!(fusion["tuned_on"]["queries"], 40, "{fusion}");
    assert_eq!(fusion["grid"].as_array().unwrap().len(), 21);
    // The table's numbers are `llmql eval`'s on the same run and qrels.
    for r in rows {
        let run = r["run"].as_str().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_llmql"))
            .args([
                "eval",
                "--qrels",
                out.join("collection/qrels/test.tsv").to_str().unwrap(),
                "--run",
                run,
                "--metrics",
                "nDCG@10,RR@10,R@100",
                "--json",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for m in ["nDCG@10", "RR@10", "R@100"] {
            let (a, b) = (r[m].as_f64().unwrap(), e[m].as_f64().unwrap());
            assert!((a - b).abs() < 1e-9, "{run} {m}: table {a} vs eval {b}");
        }
    }
    // The BM25 baseline on the embedded collection finds most answers.
    assert!(rows[0]["R@100"].as_f64().unwrap() > 0.8, "{}", rows[0]);
    // Reranking keeps the dense run's top-10 candidates: same R@100 is not required, but the
    // reranked run holds exactly rerank-depth documents per query.
    let rerank = std::fs::read_to_string(out.join("runs/llmql-ql.trec")).unwrap();
    let q0 = rerank.lines().next().unwrap().split_whitespace().next().unwrap().to_string();
    assert_eq!(rerank.lines().filter(|l| l.starts_with(&format!("{q0} "))).count(), 10);

    // The reranker's attention was chosen on the dev queries, both scores recorded.
    let rerank = &results["rerank"];
    assert_eq!(rerank["chosen_on"], "dev", "{rerank}");
    assert!(rerank["dev_nDCG@10"]["stop"].is_number() && rerank["dev_nDCG@10"]["causal"].is_number(), "{rerank}");
    assert_eq!(results["training_queries"]["generated"], 12);
    assert_eq!(std::fs::read_to_string(out.join("data/synthetic-queries.jsonl")).unwrap().lines().count(), 12);

    // A third run finds everything done.
    let o = quickstart(&out, None);
    assert!(o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.matches("done before").count(), 9, "{stderr}");

    // A stage-2 setting changed: stage 2 and everything after it run again, nothing before it,
    // and stage 2's old output is removed first (so its checkpoints are not resumed).
    std::fs::write(out.join("dense/sentinel"), "old").unwrap();
    let o = quickstart_with(&out, None, &["--temperature", "0.02"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    for s in [
        "BM25 baseline",
        "stage 1: QL training (Attention Stop + Input Corruption)",
        "synthetic training queries (written by the stage-1 model, consistency-filtered)",
    ] {
        assert!(stderr.contains(&format!("{s}: done before")), "{s}: {stderr}");
    }
    assert!(stderr.contains("stage 2: contrastive LoRA training: its settings changed"), "{stderr}");
    assert_eq!(stderr.matches("done before").count(), 5, "{stderr}");
    assert!(!out.join("dense/sentinel").exists(), "the old stage-2 output was removed");
    assert!(out.join("dense/adapter_model.safetensors").exists());
}
