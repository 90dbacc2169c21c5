//! `llmql ql-train` end to end: a run killed abruptly (abort, like SIGKILL: no destructors, no
//! cleanup) and resumed with --resume ends with exactly the weights of an uninterrupted run; and
//! `llmql rerank` writes a QL-reranked run.
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn train_data(dir: &Path) -> PathBuf {
    // Tevatron jsonl from the fixture collection's training qrels.
    let coll = fixture("collection");
    let corpus = llmql_core::records::read_records(&coll.join("corpus.jsonl")).unwrap();
    let queries = llmql_core::records::read_records(&coll.join("queries.jsonl")).unwrap();
    let qrels = llmql_core::trec::read_qrels(&coll.join("qrels/train.tsv")).unwrap();
    let mut out = String::new();
    for (q, docs) in qrels {
        let query = &queries.iter().find(|r| r.id == q).unwrap().text;
        let pos: Vec<serde_json::Value> = docs
            .iter()
            .filter(|(_, &r)| r > 0)
            .map(|(d, _)| {
                let r = corpus.iter().find(|r| &r.id == d).unwrap();
                serde_json::json!({"docid": d, "title": r.title, "text": r.text})
            })
            .collect();
        out += &serde_json::json!({"query_id": q, "query": query, "positive_passages": pos, "negative_passages": []})
            .to_string();
        out += "\n";
    }
    let p = dir.join("train.jsonl");
    std::fs::write(&p, out).unwrap();
    p
}

fn ql_train(extra: &[&str], data: &Path, out: &Path, abort_after: Option<usize>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llmql"));
    c.args(["ql-train", "--model", fixture("tiny-llama").to_str().unwrap(), "--train-data", data.to_str().unwrap()])
        .args(["--output-dir", out.to_str().unwrap()])
        .args(["--p-max-len", "96", "--q-max-len", "24", "--per-device-train-batch-size", "3"])
        .args(["--gradient-accumulation-steps", "2", "--learning-rate", "1e-3", "--num-train-epochs", "3"])
        .args(["--save-steps", "2", "--logging-steps", "1", "--seed", "7", "--q2d-ratio", "0.3"])
        .args(extra)
        .env("RUST_LOG", "warn");
    if let Some(n) = abort_after {
        c.env("LLMQL_TEST_ABORT_AFTER_STEP", n.to_string());
    }
    c.output().unwrap()
}

#[test]
fn killed_and_resumed_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = train_data(dir.path());
    let a = dir.path().join("a");
    let o = ql_train(&[], &data, &a, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = dir.path().join("b");
    let o = ql_train(&[], &data, &b, Some(5));
    assert!(!o.status.success(), "the run should have been killed");
    assert!(b.join("checkpoint-4").exists() && !b.join("checkpoint-6").exists());
    assert!(!b.join("model.safetensors").exists(), "a killed run must not leave a final model");
    let o = ql_train(&["--resume"], &data, &b, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wa = std::fs::read(a.join("model.safetensors")).unwrap();
    let wb = std::fs::read(b.join("model.safetensors")).unwrap();
    assert!(wa == wb, "resumed weights differ from the uninterrupted run");
    // The result is a complete HF folder that the encoder loads.
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert!(a.join(f).exists(), "{f}");
    }
    // The model records query likelihood's lengths (rerank and generate-queries follow them).
    let ql = llmql_core::trained_with::TrainedWith::read(&a).unwrap().expect("llmql.json").ql.unwrap();
    assert_eq!((ql.p_max_len, ql.q_max_len), (Some(96), Some(24)));
    let enc_in = dir.path().join("q.jsonl");
    std::fs::write(&enc_in, "{\"_id\": \"q\", \"text\": \"honey bees\"}\n").unwrap();
    let e = Command::new(env!("CARGO_BIN_EXE_llmql"))
        .args(["encode", "--model", a.to_str().unwrap(), "--input", enc_in.to_str().unwrap(), "--kind", "query"])
        .args(["--output", dir.path().join("enc").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
}

#[test]
fn rerank_scores_every_pair_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let coll = fixture("collection");
    // A run: every test query against the first 5 corpus documents.
    let corpus = llmql_core::records::read_records(&coll.join("corpus.jsonl")).unwrap();
    let queries = llmql_core::records::read_records(&coll.join("queries.jsonl")).unwrap();
    let mut run = String::new();
    for q in queries.iter().take(3) {
        for (i, d) in corpus.iter().take(5).enumerate() {
            run += &format!("{} Q0 {} {} {} bm25\n", q.id, d.id, i + 1, 10 - i);
        }
    }
    let run_path = dir.path().join("in.trec");
    std::fs::write(&run_path, run).unwrap();
    let out = dir.path().join("out.trec");
    let o = Command::new(env!("CARGO_BIN_EXE_llmql"))
        .args(["rerank", "--model", fixture("tiny-llama").to_str().unwrap()])
        .args([
            "--queries",
            coll.join("queries.jsonl").to_str().unwrap(),
            "--corpus",
            coll.join("corpus.jsonl").to_str().unwrap(),
        ])
        .args([
            "--run",
            run_path.to_str().unwrap(),
            "--depth",
            "4",
            "--output",
            out.to_str().unwrap(),
            "--batch-size",
            "3",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12, "3 queries x depth 4");
    // Scores are log-probabilities (negative) and sorted within each query.
    let mut prev: Option<(String, f64)> = None;
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        let s: f64 = f[4].parse().unwrap();
        assert!(s < 0.0);
        if let Some((q, p)) = &prev {
            if q == f[0] {
                assert!(s <= *p);
            }
        }
        prev = Some((f[0].to_string(), s));
    }
}

#[test]
fn lora_run_killed_and_resumed_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = train_data(dir.path());
    let lora = ["--lora", "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0.1"];
    let a = dir.path().join("a");
    let o = ql_train(&lora, &data, &a, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = dir.path().join("b");
    let o = ql_train(&lora, &data, &b, Some(3));
    assert!(!o.status.success(), "the run should have been killed");
    let mut resume = lora.to_vec();
    resume.push("--resume");
    let o = ql_train(&resume, &data, &b, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["adapter_model.safetensors", "model.safetensors"] {
        let wa = std::fs::read(a.join(f)).unwrap();
        let wb = std::fs::read(b.join(f)).unwrap();
        assert!(wa == wb, "{f}: resumed LoRA run differs from the uninterrupted run");
    }
    let conf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(conf["peft_type"], "LORA");
    assert_eq!(conf["r"], 4);
    // The merged weights differ from the base: the adapter learned something.
    let base = llmql_core::ModelSource::open(&fixture("tiny-llama")).unwrap();
    let merged = llmql_core::ModelSource::open(&a).unwrap();
    let (w0, _) = base.weights.read_f32("model.layers.0.self_attn.q_proj.weight").unwrap();
    let (w1, _) = merged.weights.read_f32("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert!(w0.iter().zip(&w1).any(|(x, y)| (x - y).abs() > 1e-6));
    // Frozen base: a weight LoRA does not target is unchanged.
    let (e0, _) = base.weights.read_f32("model.embed_tokens.weight").unwrap();
    let (e1, _) = merged.weights.read_f32("model.embed_tokens.weight").unwrap();
    assert_eq!(e0, e1);
}

#[test]
fn gradient_checkpointing_gives_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = train_data(dir.path());
    let a = dir.path().join("plain");
    let b = dir.path().join("ckpt");
    let o = ql_train(&["--max-steps", "2"], &data, &a, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = ql_train(&["--max-steps", "2", "--gradient-checkpointing"], &data, &b, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Burn's op-level recomputation, alone and with the per-layer checkpointing.
    let c = dir.path().join("op");
    let o = ql_train(&["--max-steps", "2", "--op-checkpointing"], &data, &c, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = dir.path().join("both");
    let o = ql_train(&["--max-steps", "2", "--op-checkpointing", "--gradient-checkpointing"], &data, &d, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wa = llmql_core::ModelSource::open(&a).unwrap();
    for other in [&b, &c, &d] {
        let wb = llmql_core::ModelSource::open(other).unwrap();
        for name in ["model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight", "lm_head.weight"] {
            let (x, _) = wa.weights.read_f32(name).unwrap();
            let (y, _) = wb.weights.read_f32(name).unwrap();
            let d = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(d <= 1e-6, "{name} ({}): recomputing activations changed the update by {d}", other.display());
        }
    }
}

#[test]
fn data_parallel_over_two_devices_equals_one_device_with_the_global_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = train_data(dir.path());
    let run = |out: &Path, extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_llmql"))
            .args([
                "ql-train",
                "--model",
                fixture("tiny-llama").to_str().unwrap(),
                "--train-data",
                data.to_str().unwrap(),
            ])
            .args(["--output-dir", out.to_str().unwrap(), "--p-max-len", "64", "--q-max-len", "16", "--max-steps", "3"])
            .args(["--learning-rate", "2e-3", "--save-steps", "0", "--seed", "11", "--q2d-ratio", "0.3"])
            .args(["--lora", "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<(String, Vec<f32>)> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let one = run(&dir.path().join("one"), &["--per-device-train-batch-size", "4"]);
    let two = run(&dir.path().join("two"), &["--per-device-train-batch-size", "2", "--devices", "flex,flex"]);
    let base = {
        let bytes = std::fs::read(fixture("tiny-llama").join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("model.layers.0.self_attn.q_proj.weight").unwrap();
        t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>()
    };
    assert_eq!(one.iter().map(|x| &x.0).collect::<Vec<_>>(), two.iter().map(|x| &x.0).collect::<Vec<_>>());
    for ((name, a), (_, b)) in one.iter().zip(&two) {
        let d = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(d < 1e-4, "{name}: 2-device stage-1 training differs from 1-device training by {d}");
    }
    let q = &one.iter().find(|x| x.0 == "model.layers.0.self_attn.q_proj.weight").unwrap().1;
    let moved = q.iter().zip(&base).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(moved > 1e-4, "training did not move the weights ({moved})");
}
