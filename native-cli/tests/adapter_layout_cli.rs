//! `--adapter-layout` of `train`: the Tevatron (AutoModel) layout by default, the causal-LM one on
//! request; both hold the same weights (same embeddings through `encode --adapter`); the flag
//! without `--lora` is refused; `ql-train` (stage 1, a causal LM) defaults to the causal-LM layout.
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn llmql(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_llmql")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn ok(args: &[&str]) {
    let o = llmql(args);
    assert!(o.status.success(), "llmql {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn adapter_keys(dir: &Path) -> Vec<String> {
    let bytes = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    safetensors::SafeTensors::deserialize(&bytes).unwrap().names().into_iter().map(str::to_string).collect()
}

#[test]
fn train_writes_the_tevatron_layout_by_default_and_causal_lm_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    std::fs::write(
        &data,
        "{\"query_id\": \"q1\", \"query\": \"where do rivers go\", \"positive_passages\": [{\"docid\": \"d1\", \"title\": \"Rivers\", \"text\": \"Rivers carry water to the sea.\"}], \"negative_passages\": [{\"docid\": \"d2\", \"title\": \"\", \"text\": \"Bees make honey.\"}]}\n",
    )
    .unwrap();
    let model = fixture("tiny-llama");
    let input = fixture("collection/queries.jsonl");
    let mut npys = Vec::new();
    for (tag, layout, prefix, task) in [
        ("default", None, "base_model.model.layers.", "FEATURE_EXTRACTION"),
        ("clm", Some("causal-lm"), "base_model.model.model.layers.", "CAUSAL_LM"),
    ] {
        let out = dir.path().join(tag);
        let mut args = vec![
            "train",
            "--model",
            model.to_str().unwrap(),
            "--train-data",
            data.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
            "--lora",
            "--lora-r",
            "4",
            "--lora-dropout",
            "0",
            "--train-group-size",
            "2",
            "--per-device-train-batch-size",
            "1",
            "--max-steps",
            "2",
            "--learning-rate",
            "1e-2",
            "--save-steps",
            "0",
            "--query-max-len",
            "64",
            "--passage-max-len",
            "64",
            "--seed",
            "5",
        ];
        if let Some(l) = layout {
            args.extend(["--adapter-layout", l]);
        }
        ok(&args);
        let keys = adapter_keys(&out);
        assert_eq!(keys.len(), 28);
        assert!(keys.iter().all(|k| k.starts_with(prefix)), "{tag}: {keys:?}");
        let conf = std::fs::read_to_string(out.join("adapter_config.json")).unwrap();
        assert!(conf.contains(&format!("\"task_type\": \"{task}\"")), "{tag}: {conf}");
        let enc = dir.path().join(format!("{tag}-enc"));
        ok(&[
            "encode",
            "--model",
            model.to_str().unwrap(),
            "--adapter",
            out.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--kind",
            "query",
            "--max-len",
            "64",
            "--output",
            enc.to_str().unwrap(),
        ]);
        npys.push(std::fs::read(enc.join("embeddings.npy")).unwrap());
    }
    assert_eq!(npys[0], npys[1], "the layout changes names, never weights");

    let o = llmql(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--train-data",
        data.to_str().unwrap(),
        "--output-dir",
        dir.path().join("x").to_str().unwrap(),
        "--adapter-layout",
        "causal-lm",
    ]);
    // Refused by clap (usage error, exit 2), naming both flags.
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--lora") && err.contains("--adapter-layout"), "{err}");
}
