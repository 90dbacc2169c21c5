//! GGUF files against transformers' own GGUF loader (tests/fixtures/gguf/make_gguf_fixtures.py):
//! token ids, eos-pooled embeddings and Attention-Stop QL scores, for two tiny files that hold every
//! tensor type we read (F32/F16/BF16/Q8_0/Q4_0/Q4_1, llama.cpp-permuted q/k) with a byte-level and a
//! sentencepiece vocabulary, and for the quickstart's real SmolLM2-135M-Instruct Q4_1 file.
#![cfg(feature = "flex")]
use burn::backend::Flex;
use burn::tensor::DType;
use llmql_core::model::LoadOptions;
use llmql_core::ql::example::{build_d2q, passage_text, LossOn};
use llmql_core::ql::loss::{target_log_probs, QlBatch};
use llmql_core::{Encoder, EncoderOptions, Kind, ModelSource, Template};
use llmql_tests::{fixture, max_abs_diff};
use serde_json::Value;
use std::path::Path;

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn check(path: &Path, g: &Value, emb_tol: f32, score_tol: f64) {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let ck = ModelSource::open(path).unwrap();
    assert_eq!(ck.tokenizer.eos_id as u64, g["eos_id"].as_u64().unwrap(), "{name}: eos");
    assert_eq!(ck.tokenizer.bos_id.is_some(), g["bos_added"].as_bool().unwrap(), "{name}: bos");
    for t in g["tokenize"].as_array().unwrap() {
        let text = t["text"].as_str().unwrap();
        let ours = ck.tokenizer.tokenizer.encode(text, true).unwrap().get_ids().to_vec();
        assert_eq!(ours, ids(&t["ids"]), "{name}: token ids of {text:?}");
    }
    let device = Default::default();
    let enc = Encoder::<Flex>::load(
        &ck,
        EncoderOptions { template: Template::Llmql, max_len: 512, normalize: true, ..Default::default() },
        DType::F32,
        &device,
    )
    .unwrap();
    let mut worst = 0f32;
    for e in g["embeddings"].as_array().unwrap() {
        let kind: Kind = e["kind"].as_str().unwrap().parse().unwrap();
        let text = e["text"].as_str().unwrap();
        let got = enc.tokenize(kind, e["title"].as_str(), text).unwrap();
        assert_eq!(got, ids(&e["input_ids"]), "{name}: input ids of {text:?}");
        let v = enc.embed_ids_to_vec(&[got]).remove(0);
        let want: Vec<f32> = e["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        worst = worst.max(max_abs_diff(&v, &want));
    }
    println!("{name}: max |embedding diff| {worst:.2e}");
    assert!(worst <= emb_tol, "{name}: embeddings differ from transformers by {worst}");
    drop(enc);
    let m = ck
        .load_model::<Flex>(
            LoadOptions { dtype: DType::F32, lm_head: true, host_embeddings: false, compute_dtype: None },
            &device,
        )
        .unwrap();
    for s in g["ql_scores"].as_array().unwrap() {
        let title = s["title"].as_str().filter(|t| !t.is_empty());
        let passage = passage_text(title, s["text"].as_str().unwrap());
        let ex = build_d2q(&ck.tokenizer, &passage, s["query"].as_str().unwrap(), 128, 32).unwrap();
        assert_eq!(ex.input_ids, ids(&s["input_ids"]), "{name}: QL example ids");
        let batch = QlBatch::<Flex>::new(std::slice::from_ref(&ex), LossOn::Query, ck.tokenizer.eos_id, true, &device);
        let lp: Vec<f32> = target_log_probs(&m, &batch).into_data().to_vec().unwrap();
        let ours: f64 = lp.iter().map(|&x| x as f64).sum();
        let want = s["score"].as_f64().unwrap();
        println!("{name}: QL score {ours:.5} vs {want:.5}");
        assert!((ours - want).abs() <= score_tol, "{name}: QL score {ours} vs transformers {want}");
    }
}

fn golden() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("gguf/golden.json")).unwrap()).unwrap()
}

#[test]
fn tiny_byte_level_gguf_matches_transformers() {
    check(&fixture("gguf/tiny-llama-q.gguf"), &golden()["tiny-llama-q.gguf"], 1e-4, 1e-3);
}

#[test]
fn tiny_sentencepiece_gguf_matches_transformers() {
    check(&fixture("gguf/tiny-spm.gguf"), &golden()["tiny-spm.gguf"], 1e-4, 1e-3);
}

#[test]
fn smollm2_q4_1_gguf_matches_transformers() {
    let Some(path) = llmql_tests::smollm2_gguf() else {
        return;
    };
    let g: Value = serde_json::from_slice(&std::fs::read(fixture("gguf/smollm2.json")).unwrap()).unwrap();
    // 30 layers of f32 arithmetic in a different order: a little looser than the 2-layer files.
    check(&path, &g, 2e-4, 2e-3);
}

fn golden_kquant() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("gguf/golden_kquant.json")).unwrap()).unwrap()
}

/// Every matrix a K-quant or IQ4 type (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, Q5_0, Q5_1),
/// against transformers' GGUF loader (make_kquant_fixtures.py).
#[test]
fn tiny_kquant_gguf_matches_transformers() {
    check(&fixture("gguf/tiny-kquant.gguf"), &golden_kquant()["tiny-kquant.gguf"], 1e-4, 1e-3);
}

/// Llama 3 rope scaling stored as `rope_freqs` (as llama.cpp's converter writes it) is read back:
/// the GGUF made from tests/fixtures/tiny-llama gives the HF folder's embeddings (transformers), and
/// not the ones without scaling.
#[test]
fn rope_freqs_gguf_matches_the_hf_folder() {
    let g = &golden_kquant()["tiny-llama-rope.gguf"];
    let ck = ModelSource::open(&fixture("gguf/tiny-llama-rope.gguf")).unwrap();
    match &ck.config.rope_scaling {
        Some(llmql_core::config::RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            // tiny-llama's config.json: factor 8, low 1, high 4, original 16.
            assert!(
                (factor - 8.0).abs() < 1e-6 && (low_freq_factor - 1.0).abs() < 1e-9,
                "{:?}",
                ck.config.rope_scaling
            );
            assert!(
                (high_freq_factor - 4.0).abs() < 1e-3 && (*original_max_position_embeddings as f64 - 16.0).abs() < 1e-2,
                "{:?}",
                ck.config.rope_scaling
            );
        }
        other => panic!("rope_freqs not read: {other:?}"),
    }
    let enc = Encoder::<Flex>::load(
        &ck,
        EncoderOptions { template: Template::Llmql, max_len: 512, normalize: true, ..Default::default() },
        DType::F32,
        &Default::default(),
    )
    .unwrap();
    let (mut worst, mut unscaled) = (0f32, 0f32);
    for e in g["embeddings"].as_array().unwrap() {
        let v = enc.embed_ids_to_vec(&[ids(&e["input_ids"])]).remove(0);
        let f = |k: &str| -> Vec<f32> { e[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect() };
        worst = worst.max(max_abs_diff(&v, &f("embedding")));
        unscaled = unscaled.max(max_abs_diff(&v, &f("embedding_without_scaling")));
    }
    println!("tiny-llama-rope.gguf: max |embedding diff| {worst:.2e} (vs unscaled rope {unscaled:.2e})");
    assert!(worst <= 1e-4, "embeddings differ from the HF folder by {worst}");
    assert!(unscaled > 1e-2, "rope scaling made no difference ({unscaled})");
}
