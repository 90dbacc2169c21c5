//! End-to-end tests of the `llmql` binary: encode output equals transformers' golden embeddings,
//! and bad input fails cleanly (message naming file and line, non-zero exit, no complete-looking output).
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn llmql(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_llmql")).args(args).env("RUST_LOG", "warn").output().expect("run llmql")
}

fn read_npy(p: &Path) -> (Vec<f32>, usize, usize) {
    llmql_core::npy::read_f32_matrix(p).unwrap()
}

#[test]
fn encode_matches_golden_and_keeps_input_order() {
    let g: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("tiny-qwen2/golden.json")).unwrap()).unwrap();
    // The raw passage cases share one max_len; write them as a BEIR corpus.
    let cases: Vec<&serde_json::Value> =
        g["cases"].as_array().unwrap().iter().filter(|c| c["template"] == "raw" && c["kind"] == "passage").collect();
    assert!(cases.len() >= 2);
    let max_len = cases[0]["max_len"].as_u64().unwrap();
    assert!(cases.iter().all(|c| c["max_len"].as_u64().unwrap() == max_len));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("corpus.jsonl");
    let mut lines = String::new();
    for (i, c) in cases.iter().enumerate() {
        lines += &serde_json::json!({"_id": format!("d{i}"), "title": c["title"], "text": c["text"]}).to_string();
        lines += "\n";
    }
    std::fs::write(&input, lines).unwrap();
    let out = dir.path().join("enc");
    let o = llmql(&[
        "encode",
        "--model",
        fixture("tiny-qwen2").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--kind",
        "passage",
        "--template",
        "raw",
        "--max-len",
        &max_len.to_string(),
        "--batch-size",
        "2",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (v, rows, dim) = read_npy(&out.join("embeddings.npy"));
    assert_eq!((rows, dim), (cases.len(), 64));
    for (i, c) in cases.iter().enumerate() {
        let want: Vec<f32> = c["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let got = &v[i * dim..(i + 1) * dim];
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d <= 1e-4, "row {i}: {d}");
    }
    let ids = std::fs::read_to_string(out.join("ids.txt")).unwrap();
    let want_ids: Vec<String> = (0..cases.len()).map(|i| format!("d{i}")).collect();
    assert_eq!(ids.lines().collect::<Vec<_>>(), want_ids);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["dim"], 64);
    assert_eq!(meta["kind"], "passage");
    assert_eq!(meta["template"], "raw");
    assert_eq!(meta["normalized"], true);
    assert_eq!(meta["max_len"], max_len);
    // No temporaries left behind.
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

fn expect_failure(args: &[&str], must_contain: &[&str], out: &Path) {
    let o = llmql(args);
    assert!(!o.status.success(), "expected failure for {args:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    for m in must_contain {
        assert!(err.contains(m), "stderr lacks {m:?}: {err}");
    }
    assert!(!out.join("meta.json").exists(), "an output that looks complete was left");
    assert!(!out.join("embeddings.npy").exists(), "embeddings.npy was left");
}

#[test]
fn bad_input_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("tiny-llama");
    let model = model.to_str().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let write = |name: &str, s: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, s).unwrap();
        p.to_str().unwrap().to_string()
    };
    let bad_json = write("bad.jsonl", "{\"_id\": \"a\", \"text\": \"ok\"}\n{\"_id\": \"b\", \"text\": \n");
    expect_failure(
        &["encode", "--model", model, "--input", &bad_json, "--kind", "passage", "--output", o],
        &["bad.jsonl, line 2", "malformed JSON"],
        &out,
    );
    let no_text = write("notext.jsonl", "{\"_id\": \"a\", \"text\": \"ok\"}\n\n{\"_id\": \"b\", \"title\": \"t\"}\n");
    expect_failure(
        &["encode", "--model", model, "--input", &no_text, "--kind", "passage", "--output", o],
        &["notext.jsonl, line 3", "missing field `text`"],
        &out,
    );
    let empty = write("empty.jsonl", "");
    expect_failure(
        &["encode", "--model", model, "--input", &empty, "--kind", "query", "--output", o],
        &["empty.jsonl", "empty"],
        &out,
    );
    let good = write("good.jsonl", "{\"_id\": \"a\", \"text\": \"ok\"}\n");
    let missing_model = dir.path().join("no-such-model");
    expect_failure(
        &["encode", "--model", missing_model.to_str().unwrap(), "--input", &good, "--kind", "query", "--output", o],
        &["no-such-model"],
        &out,
    );
    assert!(!out.exists(), "the output folder was created although nothing was written");
    let missing_input = dir.path().join("nope.jsonl");
    expect_failure(
        &["encode", "--model", model, "--input", missing_input.to_str().unwrap(), "--kind", "query", "--output", o],
        &["nope.jsonl"],
        &out,
    );
    expect_failure(
        &["encode", "--model", model, "--input", &good, "--kind", "query", "--output", o, "--device", "cuda:0"],
        &["cuda"],
        &out,
    );
}

#[test]
fn info_describes_the_model() {
    let o = llmql(&["info", "--model", fixture("tiny-qwen2").to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["family"], "qwen2");
    assert_eq!(v["layers"], 2);
    assert_eq!(v["kv_heads"], 2);
    assert_eq!(v["dtype"], "f16");
    assert_eq!(v["tie_word_embeddings"], true);
    assert_eq!(v["bos"], serde_json::Value::Null);
    assert!(v["eos"].as_str().unwrap().contains("<|endoftext|>"));
    // Parameter count equals the sum of the tensors stored (tied: no lm_head).
    let st = std::fs::read(fixture("tiny-qwen2/model.safetensors")).unwrap();
    let t = safetensors_count(&st);
    assert_eq!(v["parameters"].as_u64().unwrap() as usize, t);
}

fn safetensors_count(bytes: &[u8]) -> usize {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let h: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    h.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).product::<usize>())
        .sum()
}
