//! `llmql encode --devices`: one command spreads a corpus over several devices (one shard each);
//! the shards together are exactly the single-device encoding. (Here two flex peers; on a GPU
//! server `--devices cuda:0,cuda:1,...`.)
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn llmql(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_llmql")).args(args).env("RUST_LOG", "warn").output().expect("run llmql")
}

#[test]
fn encode_over_two_devices_equals_one_device() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = fixture("collection/corpus.jsonl");
    let m = fixture("tiny-qwen2");
    let base = [
        "encode",
        "--model",
        m.to_str().unwrap(),
        "--input",
        corpus.to_str().unwrap(),
        "--kind",
        "passage",
        "--max-len",
        "64",
    ];
    let one = tmp.path().join("one");
    let o = llmql(&[&base[..], &["--output", one.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let two = tmp.path().join("two");
    let o = llmql(&[&base[..], &["--output", two.to_str().unwrap(), "--devices", "flex,flex"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, ra, da) = llmql_core::npy::read_f32_matrix(&one.join("embeddings.npy")).unwrap();
    let mut b = Vec::new();
    let mut ids = String::new();
    let mut rows = 0;
    for i in 0..2 {
        let (v, r, d) = llmql_core::npy::read_f32_matrix(&two.join(format!("embeddings.{i}.npy"))).unwrap();
        assert_eq!(d, da);
        assert!(r > 0, "shard {i} is empty");
        b.extend(v);
        rows += r;
        ids += &std::fs::read_to_string(two.join(format!("ids.{i}.txt"))).unwrap();
    }
    assert_eq!(rows, ra);
    assert_eq!(ids, std::fs::read_to_string(one.join("ids.txt")).unwrap());
    let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(d < 1e-5, "sharded encoding differs by {d}");
    // --shard and --devices together are refused.
    let o =
        llmql(&[&base[..], &["--output", two.to_str().unwrap(), "--devices", "flex,flex", "--shard", "0/2"]].concat());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--shard"));
}

#[test]
fn incomplete_multi_node_flags_are_named() {
    let cases: [(&[&str], &str); 4] = [
        (&["--nodes", "2"], "--orchestrator"),
        (&["--nodes", "2", "--orchestrator", "ws://127.0.0.1:3000"], "--node-address"),
        (
            &["--nodes", "2", "--node-rank", "2", "--orchestrator", "ws://h:1", "--node-address", "ws://h:2"],
            "--node-rank 2",
        ),
        (&["--node-rank", "1"], "--nodes"),
    ];
    for (extra, needle) in cases {
        let args = [&["train", "--model", "m", "--train-data", "t.jsonl", "--output-dir", "o"][..], extra].concat();
        let o = llmql(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle), "{extra:?}: expected an error naming {needle}, got {err}");
    }
}

/// A peer that fails stops the others instead of leaving them waiting for it in an all-reduce, and
/// its own error is the one reported.
#[test]
fn a_failing_peer_stops_the_group_with_its_own_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("train.jsonl");
    let p = |id: &str, t: &str| serde_json::json!({"docid": id, "title": "", "text": t});
    let line = serde_json::json!({"query_id": "q", "query": "honey", "positive_passages": [p("a", "bees make honey")], "negative_passages": [p("b", "granite is a rock")]});
    std::fs::write(&data, format!("{line}\n{line}\n")).unwrap();
    let m = fixture("tiny-llama");
    let train = |devices: &str, fail: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_llmql"));
        c.args(["train", "--model", m.to_str().unwrap(), "--train-data", data.to_str().unwrap(), "--output-dir"])
            .arg(tmp.path().join("out"))
            .args([
                "--lora",
                "--train-group-size",
                "2",
                "--per-device-train-batch-size",
                "1",
                "--max-steps",
                "2",
                "--devices",
                devices,
            ])
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::piped());
        if let Some(r) = fail {
            c.env("LLMQL_TEST_FAIL_RANK", r);
        }
        let mut child = c.spawn().unwrap();
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed().as_secs() > 120 {
                let _ = child.kill();
                panic!("--devices {devices}: the group hung after a peer failed");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(!status.success(), "--devices {devices}: expected a failure");
        assert!(!tmp.path().join("out/adapter_model.safetensors").exists());
        err
    };
    // Rank 1 fails after loading; rank 0 is then on its way into the first all-reduce.
    let err = train("flex,flex", Some("1"));
    assert!(
        err.lines().last().unwrap_or("").contains("peer 1 failed on purpose"),
        "expected rank 1's own error last, got:\n{err}"
    );
    // Devices of different backends cannot form one group: said up front.
    let err = train("flex,cuda:99", None);
    assert!(err.contains("devices of one backend"), "got:\n{err}");
}
