//! `llmql export-web`: the folder the browser demo loads — manifest, f16 encoder weights, adapter,
//! corpus embeddings equal to `llmql encode` on the exported weights, passage texts — written
//! atomically, with clear errors and nothing left behind on bad input.
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn llmql(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_llmql")).args(args).env("RUST_LOG", "warn").output().expect("run llmql")
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "llmql failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn safetensors_dtypes(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v["dtype"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn export_web_writes_what_the_page_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist/tiny");
    let corpus = fixture("collection");
    ok(&llmql(&[
        "export-web",
        "--model",
        s(&fixture("tiny-llama")),
        "--adapter",
        s(&fixture("stage2/adapter")),
        "--corpus",
        s(&corpus),
        "--output",
        s(&out),
        "--passage-max-len",
        "64",
    ]));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("llmql-web.json")).unwrap()).unwrap();
    assert_eq!(m["format"], "llmql-web/1");
    assert_eq!(m["model"]["weights_dtype"], "f16");
    assert_eq!(m["encoder"]["passage_max_len"], 64);
    assert_eq!(m["encoder"]["query_max_len"], llmql_core::defaults::QUERY_MAX_LEN);
    assert_eq!(m["corpus"]["count"], 60);
    assert_eq!(m["corpus"]["dim"], 64);
    for key in [
        &m["model"]["config"],
        &m["model"]["tokenizer"],
        &m["model"]["weights"][0],
        &m["model"]["adapter"]["config"],
        &m["model"]["adapter"]["weights"],
        &m["corpus"]["embeddings"],
        &m["corpus"]["ids"],
        &m["corpus"]["passages"],
    ] {
        assert!(out.join(key.as_str().unwrap()).is_file(), "{key} missing");
    }
    // Encoder weights only, in f16.
    let dtypes = safetensors_dtypes(&out.join("model/model.safetensors"));
    assert!(!dtypes.is_empty() && dtypes.iter().all(|d| d == "F16"), "{dtypes:?}");
    let header =
        String::from_utf8_lossy(&std::fs::read(out.join("model/model.safetensors")).unwrap()[..4096]).to_string();
    assert!(!header.contains("lm_head"), "the export should leave lm_head out");
    // The corpus embeddings are `llmql encode` of the exported model + adapter.
    let enc = tmp.path().join("enc");
    ok(&llmql(&[
        "encode",
        "--model",
        s(&out.join("model")),
        "--adapter",
        s(&out.join("adapter")),
        "--input",
        s(&corpus.join("corpus.jsonl")),
        "--kind",
        "passage",
        "--max-len",
        "64",
        "--output",
        s(&enc),
    ]));
    assert_eq!(
        std::fs::read(enc.join("embeddings.npy")).unwrap(),
        std::fs::read(out.join("corpus/embeddings.npy")).unwrap()
    );
    assert_eq!(std::fs::read(enc.join("ids.txt")).unwrap(), std::fs::read(out.join("corpus/ids.txt")).unwrap());
    assert_eq!(
        std::fs::read(corpus.join("corpus.jsonl")).unwrap(),
        std::fs::read(out.join("corpus/passages.jsonl")).unwrap()
    );

    // --merge: no adapter folder, merged weights that encode as base + adapter (up to f16 rounding).
    let merged = tmp.path().join("dist/merged");
    ok(&llmql(&[
        "export-web",
        "--model",
        s(&fixture("tiny-llama")),
        "--adapter",
        s(&fixture("stage2/adapter")),
        "--merge",
        "--corpus",
        s(&corpus.join("corpus.jsonl")),
        "--output",
        s(&merged),
        "--weights-dtype",
        "f32",
        "--passage-max-len",
        "64",
    ]));
    let mm: serde_json::Value = serde_json::from_slice(&std::fs::read(merged.join("llmql-web.json")).unwrap()).unwrap();
    assert!(mm["model"]["adapter"].is_null() && !merged.join("adapter").exists());
    assert!(safetensors_dtypes(&merged.join("model/model.safetensors")).iter().all(|d| d == "F32"));
    let a = llmql_core::npy::read_f32_matrix(&out.join("corpus/embeddings.npy")).unwrap().0;
    let b = llmql_core::npy::read_f32_matrix(&merged.join("corpus/embeddings.npy")).unwrap().0;
    let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(d < 5e-3, "merged export differs from base + adapter by {d}");
}

#[test]
fn export_web_bad_input_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist/bad");
    let bad = tmp.path().join("corpus.jsonl");
    std::fs::write(&bad, "{\"_id\": \"d1\", \"text\": \"fine\"}\n{\"_id\": \"d2\", \"text\": \n").unwrap();
    let o = llmql(&["export-web", "--model", s(&fixture("tiny-llama")), "--corpus", s(&bad), "--output", s(&out)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("corpus.jsonl") && err.contains("line 2"), "{err}");
    assert!(!out.exists(), "a failed export must not leave an output folder");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("dist")).unwrap().collect();
    assert!(leftovers.is_empty(), "temporary folders left behind: {leftovers:?}");
    // Not an adapter folder.
    let o = llmql(&[
        "export-web",
        "--model",
        s(&fixture("tiny-llama")),
        "--adapter",
        s(&fixture("tiny-llama")),
        "--corpus",
        s(&fixture("collection")),
        "--output",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("adapter_config.json"));
    // Neither --model nor --quickstart.
    let o = llmql(&["export-web", "--corpus", s(&fixture("collection")), "--output", s(&out)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--model"));
}
