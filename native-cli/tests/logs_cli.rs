//! Logs read well off a terminal: with stderr to a pipe (as here: `Command::output`) there are no
//! ANSI escapes or carriage returns, the progress bar is replaced by a plain line, and
//! `--log-format json` writes one parseable JSON object per line.
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn encode(extra: &[&str], input: &Path, out: &Path) -> std::process::Output {
    let model = fixture("tiny-llama");
    Command::new(env!("CARGO_BIN_EXE_llmql"))
        .args(extra)
        .args(["encode", "--kind", "passage", "--max-len", "64", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .expect("run llmql")
}

fn corpus() -> PathBuf {
    fixture("collection/corpus.jsonl")
}

#[test]
fn text_logs_to_a_pipe_are_plain() {
    let dir = tempfile::tempdir().unwrap();
    let out = encode(&[], &corpus(), &dir.path().join("e"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains('\x1b'), "ESC in piped logs:\n{err:?}");
    assert!(!err.contains('\r'), "carriage return (a progress bar) in piped logs:\n{err:?}");
    // The bar's stand-in: one plain line when the work is done.
    assert!(err.lines().any(|l| l.contains("INFO") && l.contains("encoding: done, 60/60")), "{err}");

    // An error is plain too.
    let bad = encode(&[], &dir.path().join("missing.jsonl"), &dir.path().join("f"));
    assert!(!bad.status.success());
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(err.contains("error:") && !err.contains('\x1b'), "{err:?}");
}

#[test]
fn json_logs_parse_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = encode(&["--log-format", "json"], &corpus(), &dir.path().join("e"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains('\x1b'));
    let events: Vec<serde_json::Value> =
        err.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"))).collect();
    assert!(events.len() >= 2, "{err}");
    for e in &events {
        assert!(["INFO", "WARN"].contains(&e["level"].as_str().unwrap()), "{e}");
        assert!(e["timestamp"].is_string() && e["message"].is_string(), "{e}");
    }
    assert!(events.iter().any(|e| e["message"].as_str().unwrap().starts_with("encoding: done")));

    // A bad value for the flag is refused by clap, naming the choices.
    let bad = encode(&["--log-format", "xml"], &corpus(), &dir.path().join("f"));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("text") && err.contains("json"), "{err}");
}
