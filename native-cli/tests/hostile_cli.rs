//! Hostile and unlucky input against the `llmql` binary (issue 16): every case ends with a clear
//! error naming the file (exit 1, no panic), never deletes what llmql did not write, never loses the
//! previous output, and never reads outside the model folder. Bad files are generated here.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs llmql in `cwd` (killed after `limit`: a hang is a failure).
fn run_in(cwd: &Path, args: &[&str], limit: Duration) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmql"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .env("HF_HUB_OFFLINE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run llmql");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
            assert!(
                !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
                "llmql panicked on {args:?}:\n{text}"
            );
            assert!(status.code().is_some(), "llmql was killed by a signal on {args:?}:\n{text}");
            return (status.success(), text);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("llmql {args:?} still running after {limit:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(args: &[&str]) -> (bool, String) {
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, Duration::from_secs(300))
}

/// The command fails with exit 1 and a message holding every `want`.
fn refused(args: &[&str], want: &[&str]) {
    let (ok, text) = run(args);
    assert!(!ok, "llmql {args:?} succeeded:\n{text}");
    for w in want {
        assert!(text.contains(w), "llmql {args:?}: message lacks {w:?}:\n{text}");
    }
}

/// A copy of the tiny Llama fixture with `config.json` edited by `edit`.
fn model_with(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let m = dir.join(name);
    std::fs::create_dir_all(&m).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"] {
        std::fs::copy(fixture("tiny-llama").join(f), m.join(f)).unwrap();
    }
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(m.join("config.json")).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(m.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    m
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    v.sort();
    v
}

#[test]
fn merge_lora_and_export_web_never_delete_what_llmql_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, adapter) = (fixture("tiny-llama"), fixture("stage2/adapter"));
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("thesis.tex"), "years of work").unwrap();
    let merge = |out: &str, cwd: &Path| {
        run_in(
            cwd,
            &["merge-lora", "--model", s(&model), "--adapter", s(&adapter), "--output", out],
            Duration::from_secs(300),
        )
    };
    let (ok, text) = merge(s(&mine), tmp.path());
    assert!(!ok && text.contains("not written by llmql"), "{text}");
    assert_eq!(std::fs::read_to_string(mine.join("thesis.tex")).unwrap(), "years of work");
    // `--output .` (and `..`) are refused outright, whatever they hold.
    for out in [".", "..", "mine/.."] {
        let (ok, text) = merge(out, &mine);
        assert!(!ok && text.contains("refusing to use this as an output folder"), "{out}: {text}");
    }
    assert_eq!(listing(&mine), ["thesis.tex"]);
    // An llmql output is replaced, atomically, and nothing is left beside it.
    let merged = tmp.path().join("merged");
    for _ in 0..2 {
        let (ok, text) = merge(s(&merged), tmp.path());
        assert!(ok, "{text}");
        assert!(merged.join(".llmql-output").is_file() && merged.join("model.safetensors").is_file());
    }
    assert_eq!(listing(tmp.path()), ["merged", "mine"]);

    let corpus = fixture("collection");
    let (ok, text) = run(&["export-web", "--model", s(&model), "--corpus", s(&corpus), "--output", s(&mine)]);
    assert!(!ok && text.contains("not written by llmql"), "{text}");
    assert_eq!(listing(&mine), ["thesis.tex"]);
    // The published manifest names no local path.
    let web = tmp.path().join("web");
    for _ in 0..2 {
        let (ok, text) = run(&[
            "export-web",
            "--model",
            s(&model),
            "--adapter",
            s(&adapter),
            "--corpus",
            s(&corpus),
            "--output",
            s(&web),
        ]);
        assert!(ok, "{text}");
    }
    let root = tmp.path().to_str().unwrap();
    for f in ["llmql-web.json", "corpus/meta.json"] {
        let text = std::fs::read_to_string(web.join(f)).unwrap();
        assert!(!text.contains(root) && !text.contains(env!("CARGO_MANIFEST_DIR")), "{f} names a local path:\n{text}");
    }
    assert_eq!(listing(tmp.path()), ["merged", "mine", "web"]);
}

#[test]
fn encode_keeps_the_previous_output_until_the_new_one_is_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("tiny-llama");
    let out = tmp.path().join("enc");
    let good = tmp.path().join("good.jsonl");
    std::fs::write(&good, "{\"_id\": \"a\", \"text\": \"rivers\"}\n{\"_id\": \"b\", \"text\": \"stones\"}\n").unwrap();
    let (ok, text) =
        run(&["encode", "--model", s(&model), "--input", s(&good), "--kind", "passage", "--output", s(&out)]);
    assert!(ok, "{text}");
    let before: Vec<Vec<u8>> =
        ["embeddings.npy", "ids.txt", "meta.json"].iter().map(|f| std::fs::read(out.join(f)).unwrap()).collect();
    // A temporary of a killed run (a PID that is not alive) is cleaned by the next run; one of a
    // user's own is not touched.
    let stale = out.join(".embeddings.npy.llmql-tmp-4294967294-0");
    std::fs::write(&stale, "half").unwrap();
    std::fs::write(out.join(".embeddings.npy.partial"), "someone else's").unwrap();
    // A re-run that fails midway (line 3) leaves the previous output exactly as it was.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"_id\": \"c\", \"text\": \"x\"}\n{\"_id\": \"d\", \"text\": \"y\"}\n{\"_id\": \"e\", \"text\": \n",
    )
    .unwrap();
    refused(
        &["encode", "--model", s(&model), "--input", s(&bad), "--kind", "passage", "--output", s(&out)],
        &["bad.jsonl, line 3"],
    );
    let after: Vec<Vec<u8>> =
        ["embeddings.npy", "ids.txt", "meta.json"].iter().map(|f| std::fs::read(out.join(f)).unwrap()).collect();
    assert!(before == after, "a failed re-run changed the previous output");
    // The next run that writes into the folder removes the dead run's temporary.
    let (ok, text) =
        run(&["encode", "--model", s(&model), "--input", s(&good), "--kind", "passage", "--output", s(&out)]);
    assert!(ok, "{text}");
    assert_eq!(listing(&out), [".embeddings.npy.partial", "embeddings.npy", "ids.txt", "meta.json"]);
}

#[test]
fn record_ids_are_refused_where_they_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("tiny-llama");
    let out = tmp.path().join("enc");
    for (name, body, want) in [
        (
            "empty-id.jsonl",
            "{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"\", \"text\": \"y\"}\n",
            "line 2: field `_id`: the id is empty",
        ),
        ("newline-id.jsonl", "{\"_id\": \"a\\nb\", \"text\": \"x\"}\n", "line 1: field `_id`"),
        (
            "dup-id.jsonl",
            "{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\", \"text\": \"y\"}\n{\"_id\": \"a\", \"text\": \"z\"}\n",
            "line 3: duplicate id \"a\" (first on line 1)",
        ),
    ] {
        let p = tmp.path().join(name);
        std::fs::write(&p, body).unwrap();
        refused(
            &["encode", "--model", s(&model), "--input", s(&p), "--kind", "passage", "--output", s(&out)],
            &[name, want],
        );
        assert!(!out.exists());
    }
    let tsv = tmp.path().join("c.tsv");
    std::fs::write(&tsv, "1\tone\n2\ttwo\n1\tagain\n").unwrap();
    let q = tmp.path().join("q.tsv");
    std::fs::write(&q, "q\tone\n").unwrap();
    refused(
        &["bm25", "--corpus", s(&tsv), "--queries", s(&q), "--output", s(&tmp.path().join("r.trec"))],
        &["c.tsv, line 3: duplicate id \"1\""],
    );
}

/// A GGUF file: header, the given metadata entries (already encoded) and tensor entries.
fn gguf(kv: &[Vec<u8>], tensors: &[Vec<u8>]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend((kv.len() as u64).to_le_bytes());
    kv.iter().for_each(|e| b.extend(e));
    tensors.iter().for_each(|e| b.extend(e));
    b
}

fn gguf_str(s: &str) -> Vec<u8> {
    let mut b = (s.len() as u64).to_le_bytes().to_vec();
    b.extend(s.as_bytes());
    b
}

fn gguf_tensor(name: &str, dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
    let mut b = gguf_str(name);
    b.extend((dims.len() as u32).to_le_bytes());
    dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
    b.extend(ty.to_le_bytes());
    b.extend(offset.to_le_bytes());
    b
}

#[test]
fn malformed_model_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let info = |m: &Path, want: &[&str]| refused(&["info", "--model", s(m)], want);

    // config.json values, checked where the config is read.
    info(
        &model_with(dir, "heads0", |c| c["num_attention_heads"] = 0.into()),
        &["config.json", "field `num_attention_heads`: 0"],
    );
    let rope0 = model_with(
        dir,
        "rope0",
        |c| c["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 0.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    );
    info(&rope0, &["config.json", "rope_scaling.factor"]);
    // A vocabulary smaller than the tokenizer's ids (would read past the embedding table).
    let small = model_with(dir, "small-vocab", |c| c["vocab_size"] = 10.into());
    let q = dir.join("q.jsonl");
    std::fs::write(&q, "{\"_id\": \"q\", \"text\": \"where do rivers go\"}\n").unwrap();
    refused(
        &["encode", "--model", s(&small), "--input", s(&q), "--kind", "query", "--output", s(&dir.join("e"))],
        &["tokenizer.json", "vocab_size"],
    );

    // GGUF containers.
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut align0 = gguf_str("general.alignment");
    align0.extend(4u32.to_le_bytes());
    align0.extend(0u32.to_le_bytes());
    info(&write("align0.gguf", gguf(&[align0], &[])), &["align0.gguf", "general.alignment"]);
    // Arrays nested a million deep (12 MB): refused at a small depth, no stack overflow.
    let mut deep = gguf_str("x");
    deep.extend(9u32.to_le_bytes());
    for _ in 0..1_000_000 {
        deep.extend(9u32.to_le_bytes());
        deep.extend(1u64.to_le_bytes());
    }
    info(&write("deep.gguf", gguf(&[deep], &[])), &["deep.gguf", "nested deeper"]);
    // A tensor offset that overflows when added to the data start.
    let arch = {
        let mut e = gguf_str("general.architecture");
        e.extend(8u32.to_le_bytes());
        e.extend(gguf_str("llama"));
        e
    };
    let t = gguf_tensor("token_embd.weight", &[4, 8], 0, u64::MAX - 8);
    info(&write("offset.gguf", gguf(std::slice::from_ref(&arch), &[t])), &["offset.gguf", "token_embd.weight"]);
    let t = gguf_tensor("token_embd.weight", &[], 0, 0);
    info(&write("dims0.gguf", gguf(std::slice::from_ref(&arch), &[t])), &["dims0.gguf", "0 dimensions"]);
    // An array whose count claims more elements than the file holds, and a big u8 array (30 MB,
    // stored at one byte an element): both end as errors, quickly.
    let mut claim = gguf_str("tokenizer.ggml.tokens");
    claim.extend(9u32.to_le_bytes());
    claim.extend(8u32.to_le_bytes());
    claim.extend((1u64 << 60).to_le_bytes());
    info(&write("claim.gguf", gguf(&[claim], &[])), &["claim.gguf", "claims"]);
    let mut big = gguf_str("big");
    big.extend(9u32.to_le_bytes());
    big.extend(0u32.to_le_bytes());
    big.extend(30_000_000u64.to_le_bytes());
    big.extend(std::iter::repeat_n(7u8, 30_000_000));
    info(&write("bigu8.gguf", gguf(&[big], &[])), &["bigu8.gguf", "general.architecture"]);

    // .npy files a search reads.
    let enc = dir.join("enc");
    std::fs::create_dir(&enc).unwrap();
    std::fs::write(enc.join("ids.txt"), "a\n").unwrap();
    std::fs::write(enc.join("embeddings.npy"), b"\x93NUMPY\x02\x00\x10\x00").unwrap();
    refused(
        &["search", "--queries", s(&enc), "--corpus", s(&enc), "--output", s(&dir.join("r.trec"))],
        &["embeddings.npy", "truncated header"],
    );
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend((dict.len() as u16).to_le_bytes());
    npy.extend(dict.as_bytes());
    std::fs::write(enc.join("embeddings.npy"), npy).unwrap();
    refused(
        &["search", "--queries", s(&enc), "--corpus", s(&enc), "--output", s(&dir.join("r.trec"))],
        &["embeddings.npy", "does not match shape"],
    );

    // PEFT adapter configs.
    for (name, edit) in [
        ("dropout", ("lora_dropout", serde_json::json!(2.0))),
        ("rank", ("r", serde_json::json!(1_000_000_000_000u64))),
    ] {
        let ad = dir.join(format!("adapter-{name}"));
        std::fs::create_dir(&ad).unwrap();
        std::fs::copy(fixture("stage2/adapter/adapter_model.safetensors"), ad.join("adapter_model.safetensors"))
            .unwrap();
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture("stage2/adapter/adapter_config.json")).unwrap()).unwrap();
        c[edit.0] = edit.1;
        std::fs::write(ad.join("adapter_config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
        refused(
            &[
                "encode",
                "--model",
                s(&fixture("tiny-llama")),
                "--adapter",
                s(&ad),
                "--input",
                s(&q),
                "--kind",
                "query",
                "--output",
                s(&dir.join("e")),
            ],
            &["adapter_config.json", &format!("field `{}`", edit.0)],
        );
    }
}

#[test]
fn model_folders_cannot_name_files_outside_themselves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let secret = dir.join("secret.safetensors");
    std::fs::copy(fixture("tiny-llama/model.safetensors"), &secret).unwrap();
    let with_index = |name: &str, shard: &str| {
        let m = model_with(dir, name, |_| {});
        std::fs::remove_file(m.join("model.safetensors")).unwrap();
        let index = serde_json::json!({"weight_map": {"model.embed_tokens.weight": shard}});
        std::fs::write(m.join("model.safetensors.index.json"), index.to_string()).unwrap();
        m
    };
    for (name, shard) in [("up", "../secret.safetensors"), ("abs", s(&secret))] {
        let m = with_index(name, shard);
        refused(&["info", "--model", s(&m)], &["model.safetensors.index.json", "relative path"]);
    }
    let m = with_index("link", "model-1.safetensors");
    std::os::unix::fs::symlink(&secret, m.join("model-1.safetensors")).unwrap();
    refused(&["info", "--model", s(&m)], &["model-1.safetensors", "outside the model folder"]);
    // A FIFO would block the reader forever: refused before it is opened.
    let m = with_index("fifo", "model-1.safetensors");
    assert!(Command::new("mkfifo").arg(m.join("model-1.safetensors")).status().unwrap().success());
    refused(&["info", "--model", s(&m)], &["model-1.safetensors", "not a regular file"]);
    // Hub revisions are held to the id's rules.
    refused(&["info", "--model", "org/name@../../../etc"], &["org/name@../../../etc"]);
}

#[test]
fn orchestrator_never_listens_behind_an_address_it_cannot_keep() {
    refused(&["orchestrator", "--port", "1"], &["--host 127.0.0.1", "every interface", "--host 0.0.0.0"]);
    refused(&["orchestrator", "--host", "10.1.2.3", "--port", "1"], &["--host 10.1.2.3"]);
}

/// A 20 MB passage costs what a short one costs in stage 1 (d2q and q2d) and stage 2.
#[test]
fn huge_lines_are_bounded_in_training() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let huge = "river stone glass ".repeat(1_200_000);
    let mut data = String::new();
    for i in 0..3 {
        let ex = serde_json::json!({"query_id": i.to_string(), "query": "where do rivers go",
            "positive_passages": [{"docid": format!("p{i}"), "title": "", "text": if i == 0 { huge.as_str() } else { "rivers go to the sea" }}],
            "negative_passages": [{"docid": "n", "title": "", "text": "stones"}]});
        data += &(ex.to_string() + "\n");
    }
    let train = dir.join("train.jsonl");
    std::fs::write(&train, data).unwrap();
    let model = fixture("tiny-llama");
    let start = Instant::now();
    let (ok, text) = run(&[
        "ql-train",
        "--model",
        s(&model),
        "--train-data",
        s(&train),
        "--output-dir",
        s(&dir.join("ql")),
        "--max-steps",
        "1",
        "--per-device-train-batch-size",
        "3",
        "--q2d-ratio",
        "0.5",
        "--p-max-len",
        "96",
        "--q-max-len",
        "24",
        "--save-steps",
        "0",
    ]);
    assert!(ok, "{text}");
    let (ok, text) = run(&[
        "train",
        "--model",
        s(&model),
        "--train-data",
        s(&train),
        "--output-dir",
        s(&dir.join("dense")),
        "--max-steps",
        "1",
        "--per-device-train-batch-size",
        "3",
        "--train-group-size",
        "2",
        "--lora",
        "--save-steps",
        "0",
    ]);
    assert!(ok, "{text}");
    assert!(start.elapsed() < Duration::from_secs(240), "took {:?}", start.elapsed());
}

/// `--resume` only continues this run, with its settings, from a readable checkpoint.
#[test]
fn resume_checks_settings_run_and_readability() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = fixture("tiny-llama");
    let data = dir.join("train.jsonl");
    let line = |i: usize| {
        serde_json::json!({"query_id": i.to_string(), "query": format!("query {i}"),
        "positive_passages": [{"docid": format!("p{i}"), "title": "", "text": format!("passage number {i} about rivers")}]}).to_string()
    };
    std::fs::write(&data, (0..6).map(line).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let out = dir.join("ql");
    let ql = |extra: &[&str], train: &Path| {
        let mut a = vec![
            "ql-train",
            "--model",
            s(&model),
            "--train-data",
            s(train),
            "--output-dir",
            s(&out),
            "--p-max-len",
            "64",
            "--q-max-len",
            "16",
            "--per-device-train-batch-size",
            "2",
            "--seed",
            "3",
            "--logging-steps",
            "1",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    // An earlier run leaves checkpoint-4; a new run in the same folder stops at 2.
    let (ok, text) = ql(&["--max-steps", "4", "--save-steps", "4"], &data);
    assert!(ok, "{text}");
    let (ok, text) = ql(&["--max-steps", "2", "--save-steps", "1"], &data);
    assert!(ok && text.contains("earlier run"), "{text}");
    assert!(out.join("checkpoint-4").exists() && out.join("checkpoint-2").exists());
    // The newest checkpoint of this run is unreadable: resume falls back to checkpoint-1, and the
    // earlier run's checkpoint-4 is never taken.
    std::fs::write(out.join("checkpoint-2/optimizer.bin"), "garbage").unwrap();
    for f in std::fs::read_dir(out.join("checkpoint-2")).unwrap() {
        let f = f.unwrap().path();
        if f.file_name().unwrap().to_string_lossy().starts_with("optimizer") {
            std::fs::write(&f, "garbage").unwrap();
        }
    }
    let (ok, text) = ql(&["--max-steps", "2", "--save-steps", "1", "--resume"], &data);
    assert!(ok, "{text}");
    assert!(text.contains("ignoring") && text.contains("checkpoint-4"), "{text}");
    assert!(text.contains("skipping unreadable") && text.contains("checkpoint-2"), "{text}");
    // Other settings are refused, naming them.
    let (ok, text) = ql(&["--max-steps", "2", "--save-steps", "1", "--resume", "--learning-rate", "0.5"], &data);
    assert!(!ok && text.contains("learning rate"), "{text}");
    let other = dir.join("other.jsonl");
    std::fs::write(&other, (0..6).map(|i| line(i + 10)).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let (ok, text) = ql(&["--max-steps", "2", "--save-steps", "1", "--resume"], &other);
    assert!(!ok && text.contains("training data"), "{text}");
}
