//! Fuzzing of every reader of untrusted files, on the stable toolchain: proptest mutates valid seed
//! inputs (bit flips, interesting bytes and words, inserted tokens, deletions, truncation, spliced
//! copies) and each reader must return `Ok` or `Err` — never panic, abort or hang (each case must
//! finish within [`CASE_LIMIT`]).
//!
//! Targets: the GGUF container and everything built from it (config, tokenizer, every tensor),
//! safetensors shards and `model.safetensors.index.json`, `.npy`, TREC runs and qrels, JSON-lines
//! and tsv records and Tevatron examples, PEFT `adapter_config.json`, and `config.json`.
//!
//! `cargo test -p llmql-core --lib fuzz` runs a short, deterministic round (it is part of
//! `scripts/test.sh`, so of CI). Longer by hand: `LLMQL_FUZZ_CASES=100000` (cases per target) and
//! `LLMQL_FUZZ_SEED=N` (another sequence), with `-- --nocapture` to see the counts per target.
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest a single case may take before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Word(usize, u64, u8),
    Insert(usize, usize),
    Delete(usize, usize),
    Truncate(usize),
    Splice(usize, usize, usize),
}

const WORDS: [u64; 14] = [
    0,
    1,
    2,
    7,
    0x7f,
    0xff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    (1 << 62) + 1,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (
            any::<usize>(),
            prop_oneof![Just(0u8), Just(0xff), Just(0x7f), Just(0x80), Just(b'\n'), Just(b'"'), any::<u8>()]
        )
            .prop_map(|(p, b)| Mutation::Set(p, b)),
        (any::<usize>(), 0..WORDS.len(), prop_oneof![Just(2u8), Just(4), Just(8)])
            .prop_map(|(p, w, n)| Mutation::Word(p, WORDS[w], n)),
        (any::<usize>(), any::<usize>()).prop_map(|(p, k)| Mutation::Insert(p, k)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>(), 1usize..256).prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
    ]
}

/// Applies `ms` to `seed`; `dict` holds the tokens an `Insert` puts in.
fn apply(seed: &[u8], ms: &[Mutation], dict: &[&[u8]]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for m in ms {
        let len = v.len();
        let at = |p: usize| if len == 0 { 0 } else { p % len };
        match *m {
            Mutation::Flip(p, b) if len > 0 => v[at(p)] ^= 1 << b,
            Mutation::Set(p, b) if len > 0 => v[at(p)] = b,
            Mutation::Word(p, w, n) if len >= n as usize => {
                let p = at(p).min(len - n as usize);
                v[p..p + n as usize].copy_from_slice(&w.to_le_bytes()[..n as usize]);
            }
            Mutation::Insert(p, k) if !dict.is_empty() => {
                let p = if len == 0 { 0 } else { p % (len + 1) };
                let tok = dict[k % dict.len()];
                v.splice(p..p, tok.iter().copied());
            }
            Mutation::Delete(p, n) if len > 0 => {
                let p = at(p);
                v.drain(p..(p + n).min(len));
            }
            Mutation::Truncate(p) => v.truncate(if len == 0 { 0 } else { p % len }),
            Mutation::Splice(a, b, n) if len > 0 => {
                let (a, b) = (at(a), at(b));
                let chunk: Vec<u8> = v[a..(a + n).min(len)].to_vec();
                v.splice(b..b, chunk);
            }
            _ => {}
        }
    }
    v
}

fn cases(default: u32) -> u32 {
    std::env::var("LLMQL_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `target` on mutations of `seeds` (each case: one seed, 1-4 mutations) and reports the
/// executions and how many inputs were accepted.
fn fuzz(name: &str, default_cases: u32, seeds: &[Vec<u8>], dict: &[&[u8]], target: impl Fn(&[u8]) -> bool) {
    let seed = std::env::var("LLMQL_FUZZ_SEED").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(16);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..8 + name.len().min(24)].copy_from_slice(&name.as_bytes()[..name.len().min(24)]);
    let config = Config { cases: cases(default_cases), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    // The seeds themselves must pass (and be accepted: otherwise the fuzzing explores nothing deep).
    for s in seeds {
        assert!(target(s), "fuzz {name}: a seed input is refused");
    }
    let runs = std::cell::Cell::new(0usize);
    let accepted = std::cell::Cell::new(0usize);
    let start = Instant::now();
    let strategy = (0..seeds.len(), proptest::collection::vec(mutation(), 1..5));
    let result = runner.run(&strategy, |(i, ms)| {
        let input = apply(&seeds[i], &ms, dict);
        let t = Instant::now();
        let ok = target(&input);
        if t.elapsed() > CASE_LIMIT {
            return Err(TestCaseError::fail(format!("took {:?} (a hang?) on {} bytes", t.elapsed(), input.len())));
        }
        runs.set(runs.get() + 1);
        accepted.set(accepted.get() + ok as usize);
        Ok(())
    });
    eprintln!(
        "fuzz {name}: {} executions ({} accepted, {} refused) in {:.1} s",
        runs.get(),
        accepted.get(),
        runs.get() - accepted.get(),
        start.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// seeds

/// A minimal GGUF writer for seeds.
struct Gguf {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

impl Gguf {
    fn new() -> Self {
        Gguf { kv: Vec::new(), n_kv: 0, tensors: Vec::new() }
    }
    fn key(&mut self, k: &str, ty: u32) {
        self.kv.extend((k.len() as u64).to_le_bytes());
        self.kv.extend(k.as_bytes());
        self.kv.extend(ty.to_le_bytes());
        self.n_kv += 1;
    }
    fn string(&mut self, k: &str, v: &str) {
        self.key(k, 8);
        self.kv.extend((v.len() as u64).to_le_bytes());
        self.kv.extend(v.as_bytes());
    }
    fn u32(&mut self, k: &str, v: u32) {
        self.key(k, 4);
        self.kv.extend(v.to_le_bytes());
    }
    fn f32(&mut self, k: &str, v: f32) {
        self.key(k, 6);
        self.kv.extend(v.to_le_bytes());
    }
    fn strings(&mut self, k: &str, v: &[&str]) {
        self.key(k, 9);
        self.kv.extend(8u32.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        for s in v {
            self.kv.extend((s.len() as u64).to_le_bytes());
            self.kv.extend(s.as_bytes());
        }
    }
    fn f32s(&mut self, k: &str, v: &[f32]) {
        self.key(k, 9);
        self.kv.extend(6u32.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        v.iter().for_each(|x| self.kv.extend(x.to_le_bytes()));
    }
    fn i32s(&mut self, k: &str, v: &[i32]) {
        self.key(k, 9);
        self.kv.extend(5u32.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        v.iter().for_each(|x| self.kv.extend(x.to_le_bytes()));
    }
    fn tensor_f32(&mut self, name: &str, dims: &[u64]) {
        let n: u64 = dims.iter().product();
        let data = (0..n).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect();
        self.tensors.push((name.into(), dims.to_vec(), 0, data));
    }
    fn tensor_q8(&mut self, name: &str, dims: &[u64]) {
        let blocks = dims.iter().product::<u64>() / 32;
        let mut data = Vec::new();
        for b in 0..blocks {
            data.extend(half::f16::from_f32(0.5).to_le_bytes());
            data.extend((0..32).map(|i| (i as u8).wrapping_add(b as u8)));
        }
        self.tensors.push((name.into(), dims.to_vec(), 8, data));
    }
    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        let mut offset = 0u64;
        for (name, dims, ty, data) in &self.tensors {
            out.extend((name.len() as u64).to_le_bytes());
            out.extend(name.as_bytes());
            out.extend((dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
            out.extend(ty.to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset += (data.len() as u64).next_multiple_of(32);
        }
        out.resize(out.len().next_multiple_of(32), 0);
        for (_, _, _, data) in &self.tensors {
            out.extend(data);
            out.resize(out.len().next_multiple_of(32), 0);
        }
        out
    }
}

/// A tiny Llama GGUF (hidden 4, one layer, sentencepiece vocabulary of 8) that llmql opens.
fn gguf_seed() -> Vec<u8> {
    let mut g = Gguf::new();
    g.string("general.architecture", "llama");
    g.u32("general.alignment", 32);
    for (k, v) in [
        ("embedding_length", 4),
        ("attention.head_count", 2),
        ("attention.head_count_kv", 2),
        ("feed_forward_length", 32),
        ("block_count", 1),
        ("context_length", 64),
    ] {
        g.u32(&format!("llama.{k}"), v);
    }
    g.f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    g.f32("llama.rope.freq_base", 10000.0);
    g.string("tokenizer.ggml.model", "llama");
    g.strings("tokenizer.ggml.tokens", &["<unk>", "<s>", "</s>", "\u{2581}a", "\u{2581}b", "a", "b", "\u{2581}"]);
    g.f32s("tokenizer.ggml.scores", &[0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0]);
    g.i32s("tokenizer.ggml.token_type", &[2, 3, 3, 1, 1, 1, 1, 1]);
    g.u32("tokenizer.ggml.bos_token_id", 1);
    g.u32("tokenizer.ggml.eos_token_id", 2);
    g.tensor_f32("token_embd.weight", &[4, 8]);
    g.tensor_f32("output_norm.weight", &[4]);
    g.tensor_f32("blk.0.attn_norm.weight", &[4]);
    g.tensor_f32("blk.0.attn_q.weight", &[4, 4]);
    g.tensor_f32("blk.0.attn_k.weight", &[4, 4]);
    g.tensor_q8("blk.0.ffn_up.weight", &[32, 4]);
    g.bytes()
}

fn safetensors_seed() -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let a: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let b: Vec<u8> = (0..4).flat_map(|i| half::bf16::from_f32(i as f32).to_le_bytes()).collect();
    let c: Vec<u8> = (0..3).flat_map(|i| half::f16::from_f32(i as f32).to_le_bytes()).collect();
    let tensors = vec![
        ("model.norm.weight".to_string(), TensorView::new(Dtype::F32, vec![2, 3], &a).unwrap()),
        ("lm_head.weight".to_string(), TensorView::new(Dtype::BF16, vec![4], &b).unwrap()),
        ("x".to_string(), TensorView::new(Dtype::F16, vec![3, 1], &c).unwrap()),
    ];
    safetensors::tensor::serialize(tensors, None).unwrap()
}

fn npy_seed() -> Vec<u8> {
    let mut w = crate::npy::NpyWriter::new(std::io::Cursor::new(Vec::new()), 3).unwrap();
    w.write_row(&[1.0, 2.0, 3.0]).unwrap();
    w.write_row(&[4.0, 5.0, 6.0]).unwrap();
    w.finish().unwrap().into_inner()
}

/// Writes `bytes` to `path` (a file reused by every case of a target).
fn put(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------------
// targets

#[test]
fn fuzz_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let dict: &[&[u8]] = &[b"GGUF", &[9, 0, 0, 0], &[0xff; 8], b"llama", b"general.alignment", &[0; 12]];
    fuzz("gguf", 20000, &[gguf_seed()], dict, |bytes| {
        put(&path, bytes);
        match crate::ModelSource::open(&path) {
            Ok(ck) => {
                for name in ck.weights.names() {
                    let _ = ck.weights.info(&name);
                    let _ = ck.weights.read_f32(&name);
                }
                let _ = ck.config.parameter_count();
                let _ = ck.tokenizer.encode_full("a b ab");
                true
            }
            Err(_) => {
                // The container alone, past whatever the model-level checks refused.
                if let Ok(g) = crate::gguf::GgufFile::open(&path) {
                    let _ = crate::gguf::config_json(&g);
                    let _ = crate::gguf::vocab::tokenizer_files(&g);
                    if let Ok(map) = crate::gguf::tensor_map(&g) {
                        for t in map.values() {
                            let _ = crate::gguf::read_tensor(&g, t);
                        }
                    }
                }
                false
            }
        }
    });
}

#[test]
fn fuzz_safetensors() {
    let dict: &[&[u8]] =
        &[b"\"dtype\":\"F32\"", b"\"shape\":[", b"\"data_offsets\":[", b"99999999999999999999", b"-1", b"{", b"}"];
    fuzz("safetensors", 50000, &[safetensors_seed()], dict, |bytes| {
        match crate::weights::WeightFiles::from_bytes(
            Path::new("m"),
            vec![("model.safetensors".into(), bytes.to_vec())],
        ) {
            Ok(w) => {
                for name in w.names() {
                    let _ = w.info(&name);
                    let _ = w.read_f32(&name);
                }
                let _ = w.stored_dtype();
                let _ = w.finish();
                true
            }
            Err(_) => false,
        }
    });
}

#[test]
fn fuzz_safetensors_index() {
    let seed = br#"{"metadata": {"total_size": 24}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#;
    let dict: &[&[u8]] = &[b"../", b"/etc/passwd", b"\\", b"\"", b"\0", b"{}", b"[]", b"null", b".."];
    fuzz("safetensors-index", 50000, &[seed.to_vec()], dict, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match crate::weights::index_shards(&text, Path::new("model.safetensors.index.json")) {
            Ok(files) => {
                for f in &files {
                    assert!(!f.contains("..") || !f.split('/').any(|c| c == ".."), "{f:?} accepted");
                    assert!(!f.starts_with('/'), "{f:?} accepted");
                }
                true
            }
            Err(_) => false,
        }
    });
}

#[test]
fn fuzz_npy() {
    let dict: &[&[u8]] =
        &[b"'shape': (", b"99999999999999999999", b"4611686018427387904", b",", b")", b"'<f4'", &[2, 0], &[3, 0]];
    fuzz("npy", 50000, &[npy_seed()], dict, |bytes| crate::npy::parse_f32_matrix(bytes, Path::new("e.npy")).is_ok());
}

#[test]
fn fuzz_trec() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    let run = b"q1 Q0 d1 1 2.5 tag\nq1 Q0 d2 2 1.5 tag\nq2 Q0 d1 1 -0.25 tag\n".to_vec();
    let trec_qrels = b"q1 0 d1 1\nq1 0 d2 0\nq2 0 d1 2\n".to_vec();
    let beir_qrels = b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t2\n".to_vec();
    let dict: &[&[u8]] = &[b" ", b"\t", b"\n", b"\r\n", b"NaN", b"inf", b"-1", b"99999999999999999999", b"Q0", b"\xff"];
    fuzz("trec", 20000, &[run, trec_qrels, beir_qrels], dict, |bytes| {
        put(&path, bytes);
        let run = crate::trec::read_run(&path);
        let qrels = crate::trec::read_qrels(&path);
        if let (Ok(run), Ok(qrels)) = (&run, &qrels) {
            let _ = crate::metrics::evaluate(
                qrels,
                run,
                &crate::metrics::parse_metrics("nDCG@10,RR@10,R@100,AP").unwrap(),
                true,
            );
        }
        run.is_ok() || qrels.is_ok()
    });
}

#[test]
fn fuzz_records() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("c.jsonl");
    let tsv = dir.path().join("c.tsv");
    let records = br#"{"_id": "d1", "title": "T", "text": "a b c"}
{"id": 7, "text": "x", "title": null}
{"_id": "d3", "text": "\u00e9\n"}
"#
    .to_vec();
    let tevatron = br#"{"query_id": "1", "query": "q", "positive_passages": [{"docid": 7, "title": "t", "text": "x"}], "negative_passages": [{"docid": "n", "text": "y"}]}
"#
    .to_vec();
    let dict: &[&[u8]] =
        &[b"\"_id\"", b"\"\"", b"\\n", b"\\u0000", b"\n", b"\t", b"{", b"}", b"[", b"]", b"null", b"1e999", b"\"d1\""];
    fuzz("records", 15000, &[records, tevatron], dict, |bytes| {
        put(&jsonl, bytes);
        put(&tsv, bytes);
        let a = crate::records::read_records(&jsonl);
        if let Ok(v) = &a {
            let mut seen = std::collections::HashSet::new();
            for r in v {
                assert!(crate::records::check_id(&r.id).is_ok() && seen.insert(r.id.clone()), "id {:?} accepted", r.id);
            }
        }
        let b = crate::formats::read_tevatron(&jsonl);
        let c = crate::formats::read_text_records(&tsv);
        if let Ok(v) = &c {
            assert!(v.iter().all(|r| crate::records::check_id(&r.id).is_ok()));
        }
        a.is_ok() || b.is_ok() || c.is_ok()
    });
}

#[test]
fn fuzz_adapter_config() {
    let seed = br#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"], "bias": "none"}"#;
    let dict: &[&[u8]] =
        &[b"1e12", b"-1", b"2.0", b"NaN", b"0", b"null", b"\"lm_head\"", b"[]", b"18446744073709551616"];
    fuzz("adapter-config", 50000, &[seed.to_vec()], dict, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match crate::lora::parse_adapter_config(&text, Path::new("adapter_config.json")) {
            Ok(c) => {
                assert!(
                    c.r >= 1 && c.r <= crate::lora::MAX_LORA_R && (0.0..1.0).contains(&c.lora_dropout),
                    "{c:?} accepted"
                );
                let _ = c.scale();
                true
            }
            Err(_) => false,
        }
    });
}

#[test]
fn fuzz_model_config() {
    let seed = br#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "rope_theta": 10000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}, "eos_token_id": [1, 2]}"#;
    let dict: &[&[u8]] =
        &[b"0", b"-1", b"1e308", b"99999999999999999999", b"null", b"\"qwen2\"", b"\"mistral\"", b"[]", b"{}"];
    fuzz("config", 50000, &[seed.to_vec()], dict, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match crate::config::ModelConfig::from_json_str(&text, Path::new("config.json")) {
            Ok(c) => {
                let _ = c.parameter_count();
                let _ = crate::model::rope::RotaryEmbedding::new(&c);
                true
            }
            Err(_) => false,
        }
    });
}
