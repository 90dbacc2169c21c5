//! `--model` sources besides a folder: hub ids through an HF cache laid out as `huggingface_hub`
//! lays it out (offline), and GGUF files (including a model trained from one being saved as a
//! complete HF folder), with clear errors when they are missing or broken.
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn llmql(args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llmql"));
    c.args(args).env("RUST_LOG", "warn").env_remove("HF_HOME").env_remove("HF_HUB_CACHE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run llmql")
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "llmql failed:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `<cache>/models--org--name/{blobs/<hash>, refs/main, snapshots/<commit>/<file> -> ../../blobs/<hash>}`
fn hub_cache(cache: &Path, org: &str, name: &str, src: &Path) {
    let repo = cache.join(format!("models--{org}--{name}"));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for (i, entry) in std::fs::read_dir(src).unwrap().enumerate() {
        let entry = entry.unwrap();
        let f = entry.file_name();
        if f.to_string_lossy().ends_with(".json") || f.to_string_lossy().ends_with(".safetensors") {
            let blob = format!("{i:040x}");
            std::fs::copy(entry.path(), repo.join("blobs").join(&blob)).unwrap();
            std::os::unix::fs::symlink(format!("../../blobs/{blob}"), repo.join("snapshots").join(commit).join(&f))
                .unwrap();
        }
    }
}

#[test]
fn hub_id_resolves_offline_through_the_hf_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    hub_cache(&cache, "llmql-test", "tiny-llama", &fixture("tiny-llama"));
    let env = [("HF_HUB_CACHE", cache.as_path()), ("HF_HUB_OFFLINE", Path::new("1"))];
    let out = ok(&llmql(&["info", "--model", "llmql-test/tiny-llama"], &env));
    assert!(out.contains("family      llama"), "{out}");
    assert!(out.contains("models--llmql-test--tiny-llama/snapshots/"), "{out}");
    // HF_HOME/hub is the default cache when HF_HUB_CACHE is not set.
    let home = dir.path().join("hfhome");
    hub_cache(&home.join("hub"), "llmql-test", "tiny-llama", &fixture("tiny-llama"));
    ok(&llmql(
        &["info", "--model", "llmql-test/tiny-llama"],
        &[("HF_HOME", home.as_path()), ("HF_HUB_OFFLINE", Path::new("1"))],
    ));

    // Same embeddings as the folder itself.
    let input = dir.path().join("q.jsonl");
    std::fs::write(&input, "{\"_id\": \"a\", \"text\": \"where do rivers go\"}\n").unwrap();
    let (o1, o2) = (dir.path().join("e1"), dir.path().join("e2"));
    let inp = input.to_str().unwrap();
    ok(&llmql(
        &[
            "encode",
            "--model",
            "llmql-test/tiny-llama",
            "--input",
            inp,
            "--kind",
            "query",
            "--output",
            o1.to_str().unwrap(),
        ],
        &env,
    ));
    let folder = fixture("tiny-llama");
    ok(&llmql(
        &[
            "encode",
            "--model",
            folder.to_str().unwrap(),
            "--input",
            inp,
            "--kind",
            "query",
            "--output",
            o2.to_str().unwrap(),
        ],
        &env,
    ));
    assert_eq!(std::fs::read(o1.join("embeddings.npy")).unwrap(), std::fs::read(o2.join("embeddings.npy")).unwrap());

    // Not cached and offline: a clear error, exit 1.
    let o = llmql(&["info", "--model", "llmql-test/not-there"], &env);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("llmql-test/not-there") && err.contains("not in the cache") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
}

#[test]
fn adapter_hub_id_resolves_offline_through_the_hf_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    hub_cache(&cache, "llmql-test", "tiny-lora", &fixture("peft-layouts/tevatron"));
    let env = [("HF_HUB_CACHE", cache.as_path()), ("HF_HUB_OFFLINE", Path::new("1"))];
    let model = fixture("tiny-llama");
    let model = model.to_str().unwrap();
    let input = dir.path().join("q.jsonl");
    std::fs::write(&input, "{\"_id\": \"a\", \"text\": \"where do rivers go\"}\n").unwrap();
    let inp = input.to_str().unwrap();
    let folder = fixture("peft-layouts/tevatron");
    let mut npys = Vec::new();
    for (tag, adapter) in [("hub", "llmql-test/tiny-lora"), ("folder", folder.to_str().unwrap()), ("none", "")] {
        let out = dir.path().join(tag);
        let mut args =
            vec!["encode", "--model", model, "--input", inp, "--kind", "query", "--output", out.to_str().unwrap()];
        if !adapter.is_empty() {
            args.extend(["--adapter", adapter]);
        }
        ok(&llmql(&args, &env));
        npys.push(std::fs::read(out.join("embeddings.npy")).unwrap());
    }
    assert_eq!(npys[0], npys[1], "hub id and folder give the same embeddings");
    assert_ne!(npys[0], npys[2], "the adapter must change the embeddings");
    // merge-lora takes the hub id too.
    let merged = dir.path().join("merged");
    ok(&llmql(
        &["merge-lora", "--model", model, "--adapter", "llmql-test/tiny-lora", "--output", merged.to_str().unwrap()],
        &env,
    ));
    assert!(merged.join("model.safetensors").is_file());

    // Not cached and offline: a clear error naming the id, exit 1.
    let o = llmql(
        &[
            "merge-lora",
            "--model",
            model,
            "--adapter",
            "llmql-test/no-lora",
            "--output",
            dir.path().join("m2").to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("hub adapter `llmql-test/no-lora`")
            && err.contains("adapter_config.json")
            && err.contains("not in the cache"),
        "{err}"
    );
    // A local path that is neither: named.
    let o = llmql(
        &[
            "encode",
            "--model",
            model,
            "--input",
            inp,
            "--kind",
            "query",
            "--output",
            dir.path().join("x").to_str().unwrap(),
            "--adapter",
            "./no/such/dir",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("./no/such/dir") && err.contains("adapter not found"), "{err}");
}

#[test]
fn gguf_models_load_train_and_save_as_hf_folders() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = fixture("gguf/tiny-llama-q.gguf");
    let out = ok(&llmql(&["info", "--model", gguf.to_str().unwrap()], &[]));
    assert!(out.contains("heads       4 query / 2 key-value"), "{out}");
    // Train one LoRA step from the GGUF: the result is a complete HF folder (tokenizer from the GGUF).
    let data = dir.path().join("train.jsonl");
    std::fs::write(
        &data,
        "{\"query_id\": \"q1\", \"query\": \"where do rivers go\", \"positive_passages\": [{\"docid\": \"d1\", \"title\": \"Rivers\", \"text\": \"Rivers carry water to the sea.\"}], \"negative_passages\": []}\n",
    )
    .unwrap();
    let model_out = dir.path().join("ql");
    ok(&llmql(
        &[
            "ql-train",
            "--model",
            gguf.to_str().unwrap(),
            "--train-data",
            data.to_str().unwrap(),
            "--output-dir",
            model_out.to_str().unwrap(),
            "--max-steps",
            "1",
            "--lora",
            "--lora-r",
            "4",
        ],
        &[],
    ));
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors", "adapter_config.json"] {
        assert!(model_out.join(f).exists(), "{f} missing from the saved model");
    }
    let out = ok(&llmql(&["info", "--model", model_out.to_str().unwrap()], &[]));
    assert!(out.contains("heads       4 query / 2 key-value") && out.contains("(2)"), "{out}");
    // Stage 1's product is a causal LM: its adapter is in the causal-LM layout by default.
    let conf = std::fs::read_to_string(model_out.join("adapter_config.json")).unwrap();
    assert!(conf.contains("\"CAUSAL_LM\""), "{conf}");

    // A truncated file: named, exit 1.
    let bytes = std::fs::read(&gguf).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = llmql(&["info", "--model", cut.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cut.gguf") && err.contains("truncated"), "{err}");
}
