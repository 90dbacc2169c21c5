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
    let base = ["encode", "--model", m.to_str().unwrap(), "--input", corpus.to_str().unwrap(), "--kind", "passage", "--max-len", "64"];
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
    let o = llmql(&[&base[..], &["--output", two.to_str().unwrap(), "--devices", "flex,flex", "--shard", "0/2"]].concat());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--shard"));
}

#[test]
fn incomplete_multi_node_flags_are_named() {
    let cases: [(&[&str], &str); 4] = [
        (&["--nodes", "2"], "--orchestrator"),
        (&["--nodes", "2", "--orchestrator", "ws://127.0.0.1:3000"], "--node-address"),
        (&["--nodes", "2", "--node-rank", "2", "--orchestrator", "ws://h:1", "--node-address", "ws://h:2"], "--node-rank 2"),
        (&["--node-rank", "1"], "--nodes"),
    ];
    for (extra, needle) in cases {
        let args = [&["train", "--model", "m", "--train-data", "t.jsonl", "--output-dir", "o"][..], extra].concat();
        let o = llmql(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle), "{extra:?}: expected an error naming {needle}, got {err}");
    }
}
