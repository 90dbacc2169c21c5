//! `llmql train` (stage 2) end to end on the fixture collection with the tiny Llama checkpoint:
//! a LoRA run improves retrieval (measured with `llmql eval`); `encode --adapter` equals encoding
//! the `merge-lora` folder; a killed and resumed run equals an uninterrupted one.
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn llmql(args: &[&str], env: Option<(&str, &str)>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llmql"));
    c.args(args).env("RUST_LOG", "warn");
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = llmql(args, None);
    assert!(o.status.success(), "llmql {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// Tevatron jsonl: each training query, its judged positives, every other passage as a negative.
fn train_data(dir: &Path) -> PathBuf {
    let coll = fixture("collection");
    let corpus = llmql_core::records::read_records(&coll.join("corpus.jsonl")).unwrap();
    let queries = llmql_core::records::read_records(&coll.join("queries.jsonl")).unwrap();
    let qrels = llmql_core::trec::read_qrels(&coll.join("qrels/train.tsv")).unwrap();
    let mut out = String::new();
    for (q, rel) in qrels {
        let p =
            |r: &llmql_core::records::TextRecord| serde_json::json!({"docid": r.id, "title": r.title, "text": r.text});
        let pos: Vec<_> = corpus.iter().filter(|r| rel.get(&r.id).copied().unwrap_or(0) > 0).map(p).collect();
        let neg: Vec<_> = corpus.iter().filter(|r| !rel.contains_key(&r.id)).map(p).collect();
        let query = &queries.iter().find(|r| r.id == q).unwrap().text;
        out += &serde_json::json!({"query_id": q, "query": query, "positive_passages": pos, "negative_passages": neg})
            .to_string();
        out += "\n";
    }
    let path = dir.join("train.jsonl");
    std::fs::write(&path, out).unwrap();
    path
}

const TRAIN: [&str; 19] = [
    "--lora",
    "--lora-r",
    "8",
    "--lora-alpha",
    "16",
    "--train-group-size",
    "4",
    "--per-device-train-batch-size",
    "4",
    "--query-max-len",
    "64",
    "--passage-max-len",
    "96",
    "--learning-rate",
    "3e-3",
    "--warmup-steps",
    "5",
    "--seed",
    "3",
];

fn ndcg(model: &str, adapter: Option<&Path>, dir: &Path, tag: &str) -> f64 {
    let coll = fixture("collection");
    let d = |n: &str| dir.join(format!("{tag}-{n}")).to_str().unwrap().to_string();
    let mut common = vec!["--model", model];
    let ad;
    if let Some(a) = adapter {
        ad = a.to_str().unwrap().to_string();
        common.extend(["--adapter", ad.as_str()]);
    }
    let c = coll.join("corpus.jsonl");
    let q = coll.join("queries.jsonl");
    let (co, qo, run) = (d("c"), d("q"), d("run.trec"));
    let mut a = vec!["encode", "--input", c.to_str().unwrap(), "--kind", "passage", "--max-len", "96", "--output", &co];
    a.extend(&common);
    ok(&a);
    let mut a = vec!["encode", "--input", q.to_str().unwrap(), "--kind", "query", "--max-len", "64", "--output", &qo];
    a.extend(&common);
    ok(&a);
    ok(&["search", "--queries", &qo, "--corpus", &co, "--depth", "100", "--output", &run]);
    let qrels = coll.join("qrels/train.tsv");
    let j = ok(&["eval", "--qrels", qrels.to_str().unwrap(), "--run", &run, "--metrics", "nDCG@10", "--json"]);
    serde_json::from_str::<serde_json::Value>(&j).unwrap()["nDCG@10"].as_f64().unwrap()
}

#[test]
fn lora_training_improves_retrieval_and_adapter_equals_merged() {
    let dir = tempfile::tempdir().unwrap();
    let data = train_data(dir.path());
    let model = fixture("tiny-llama");
    let m = model.to_str().unwrap();
    let out = dir.path().join("lora");
    let mut a =
        vec!["train", "--model", m, "--train-data", data.to_str().unwrap(), "--output-dir", out.to_str().unwrap()];
    a.extend(TRAIN);
    a.extend(["--num-train-epochs", "12", "--lora-dropout", "0.0", "--save-steps", "0"]);
    ok(&a);
    assert!(out.join("adapter_config.json").exists() && out.join("adapter_model.safetensors").exists());
    // The adapter records the settings it was trained with (encode, serve and export-web follow them).
    let record = llmql_core::trained_with::TrainedWith::read(&out).unwrap().expect("llmql.json");
    let enc = record.encoder.unwrap();
    assert_eq!((record.command.as_str(), enc.query_max_len, enc.passage_max_len), ("train", Some(64), Some(96)));
    assert_eq!((enc.pooling, enc.normalize), (Some(llmql_core::pooling::Pooling::Eos), Some(true)));
    let before = ndcg(m, None, dir.path(), "base");
    let after = ndcg(m, Some(&out), dir.path(), "lora");
    // The tiny random checkpoint cannot generalise to held-out queries; on the training queries
    // the retriever must have learned (measured with llmql eval, nDCG@10 on qrels/train.tsv).
    assert!(after > before + 0.3, "nDCG@10 {before} -> {after}");
    // merge-lora gives a plain folder whose embeddings equal base + adapter.
    let merged = dir.path().join("merged");
    ok(&["merge-lora", "--model", m, "--adapter", out.to_str().unwrap(), "--output", merged.to_str().unwrap()]);
    let merged_record = llmql_core::trained_with::TrainedWith::read(&merged).unwrap();
    assert_eq!(merged_record, Some(record), "merge-lora keeps the adapter's record");
    let after_merged = ndcg(merged.to_str().unwrap(), None, dir.path(), "merged");
    assert!((after - after_merged).abs() < 1e-9, "{after} vs {after_merged}");
    let (x, _, _) = llmql_core::npy::read_f32_matrix(&dir.path().join("lora-c/embeddings.npy")).unwrap();
    let (y, _, _) = llmql_core::npy::read_f32_matrix(&dir.path().join("merged-c/embeddings.npy")).unwrap();
    let d = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(d <= 1e-5, "adapter vs merged embeddings: {d}");
    let base_cfg = std::fs::read_to_string(model.join("config.json")).unwrap();
    let merged_cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("config.json")).unwrap()).unwrap();
    assert_eq!(merged_cfg["model_type"], serde_json::from_str::<serde_json::Value>(&base_cfg).unwrap()["model_type"]);
}

#[test]
fn killed_and_resumed_contrastive_run_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    let data = train_data(dir.path());
    let m = fixture("tiny-llama");
    let run = |out: &Path, extra: &[&str], abort: Option<&str>| {
        let mut a = vec![
            "train",
            "--model",
            m.to_str().unwrap(),
            "--train-data",
            data.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ];
        a.extend(TRAIN);
        a.extend([
            "--num-train-epochs",
            "2",
            "--lora-dropout",
            "0.1",
            "--save-steps",
            "2",
            "--gradient-accumulation-steps",
            "2",
        ]);
        a.extend(extra);
        llmql(&a, abort.map(|s| ("LLMQL_TEST_ABORT_AFTER_STEP", s)))
    };
    let a = dir.path().join("a");
    assert!(run(&a, &[], None).status.success());
    let b = dir.path().join("b");
    assert!(!run(&b, &[], Some("3")).status.success(), "the run should have been killed");
    assert!(b.join("checkpoint-2").exists() && !b.join("checkpoint-4").exists());
    let o = run(&b, &["--resume"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wa = std::fs::read(a.join("adapter_model.safetensors")).unwrap();
    let wb = std::fs::read(b.join("adapter_model.safetensors")).unwrap();
    assert!(wa == wb, "resumed adapter differs from the uninterrupted run");
}

/// Reads every tensor of a safetensors file as f32 (F32 only).
fn tensors(path: &Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
        .collect()
}

#[test]
fn data_parallel_over_two_devices_equals_one_device_with_the_global_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = train_data(dir.path());
    let m = fixture("tiny-llama");
    let run = |out: &Path, steps: &str, lr: &str, extra: &[&str]| {
        let mut a = vec![
            "train",
            "--model",
            m.to_str().unwrap(),
            "--train-data",
            data.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ];
        a.extend(["--lora", "--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0", "--train-group-size", "3"]);
        // Short limits with the tiny tokenizer (the llmql template alone is 45 of its tokens): the reference's cut.
        a.extend([
            "--query-max-len",
            "32",
            "--passage-max-len",
            "48",
            "--truncation",
            "reference",
            "--learning-rate",
            lr,
            "--warmup-steps",
            "0",
        ]);
        a.extend(["--seed", "5", "--max-steps", steps, "--save-steps", "0"]);
        a.extend(extra);
        ok(&a);
    };
    let one = dir.path().join("one");
    run(&one, "3", "3e-3", &["--per-device-train-batch-size", "4"]);
    let two = dir.path().join("two");
    run(&two, "3", "3e-3", &["--per-device-train-batch-size", "2", "--devices", "flex,flex"]);
    // The same with gradient checkpointing per decoder layer on each device.
    let ckpt = dir.path().join("two-ckpt");
    run(
        &ckpt,
        "3",
        "3e-3",
        &["--per-device-train-batch-size", "2", "--devices", "flex,flex", "--gradient-checkpointing"],
    );
    let a = tensors(&one.join("adapter_model.safetensors"));
    let b = tensors(&two.join("adapter_model.safetensors"));
    let c = tensors(&ckpt.join("adapter_model.safetensors"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert_eq!(a.keys().collect::<Vec<_>>(), c.keys().collect::<Vec<_>>());
    let mut moved = 0f32;
    let base = tensors(&{
        let z = dir.path().join("zero");
        run(&z, "1", "1e-12", &["--per-device-train-batch-size", "4"]);
        z.join("adapter_model.safetensors")
    });
    for (k, va) in &a {
        let d = va.iter().zip(&b[k]).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(d < 1e-4, "{k}: 2-device training differs from 1-device training by {d}");
        let d = va.iter().zip(&c[k]).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(d < 1e-4, "{k}: 2-device training with checkpointing differs from 1-device training by {d}");
        moved = moved.max(va.iter().zip(&base[k]).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max));
    }
    assert!(moved > 1e-3, "training did not move the adapter ({moved}): the comparison proves nothing");
}

/// Waits for a child process at most `secs` seconds (killing it then); `None` on timeout.
fn wait_for(child: &mut std::process::Child, secs: u64) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if start.elapsed().as_secs() >= secs {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Two nodes of one device each (`--nodes 2`, meeting at `llmql orchestrator`) train like one
/// device with the global batch. Ignored: with Burn 0.21 the nodes hang in the second global sync
/// (burn-collective's `SyncService::sync` never clears its list of synced peers; README, "Several
/// machines"); run it with `--ignored` after a Burn upgrade.
#[test]
#[ignore = "Burn 0.21's multi-node all-reduce deadlocks (README: Several machines)"]
fn two_nodes_train_like_one_device() {
    let dir = tempfile::tempdir().unwrap();
    let data = train_data(dir.path());
    let m = fixture("tiny-llama");
    let args = |out: &Path, bs: &str| -> Vec<String> {
        let mut a = vec![
            "train",
            "--model",
            m.to_str().unwrap(),
            "--train-data",
            data.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ];
        a.extend(["--lora", "--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0", "--train-group-size", "3"]);
        a.extend([
            "--query-max-len",
            "32",
            "--passage-max-len",
            "48",
            "--truncation",
            "reference",
            "--learning-rate",
            "3e-3",
            "--warmup-steps",
            "0",
        ]);
        a.extend(["--seed", "5", "--max-steps", "3", "--save-steps", "0", "--per-device-train-batch-size", bs]);
        a.into_iter().map(String::from).collect()
    };
    let one = dir.path().join("one");
    let a1 = args(&one, "4");
    ok(&a1.iter().map(String::as_str).collect::<Vec<_>>());
    let port = |_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let [po, p0, p1]: [u16; 3] = [0, 1, 2].map(port);
    let spawn =
        |a: Vec<String>| Command::new(env!("CARGO_BIN_EXE_llmql")).args(a).env("RUST_LOG", "warn").spawn().unwrap();
    let mut orch =
        spawn(vec!["orchestrator".into(), "--host".into(), "0.0.0.0".into(), "--port".into(), po.to_string()]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let node = |rank: usize, port: u16| {
        let mut a = args(&dir.path().join(format!("node{rank}")), "2");
        a.extend(["--devices", "flex", "--nodes", "2"].map(String::from));
        a.extend(["--node-rank".into(), rank.to_string(), "--orchestrator".into(), format!("ws://127.0.0.1:{po}")]);
        a.extend(["--node-address".into(), format!("ws://127.0.0.1:{port}")]);
        spawn(a)
    };
    let (mut n0, mut n1) = (node(0, p0), node(1, p1));
    let (s0, s1) = (wait_for(&mut n0, 120), wait_for(&mut n1, 120));
    let _ = orch.kill();
    let _ = orch.wait();
    assert!(
        s0.is_some_and(|s| s.success()) && s1.is_some_and(|s| s.success()),
        "multi-node training failed or hung: {s0:?} {s1:?}"
    );
    assert!(!dir.path().join("node1/adapter_model.safetensors").exists(), "only node 0 saves");
    let a = tensors(&one.join("adapter_model.safetensors"));
    let c = tensors(&dir.path().join("node0/adapter_model.safetensors"));
    assert_eq!(a.keys().collect::<Vec<_>>(), c.keys().collect::<Vec<_>>());
    for (k, va) in &a {
        let d = va.iter().zip(&c[k]).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(d < 1e-4, "{k}: 2-node training differs from 1-device training by {d}");
    }
}
