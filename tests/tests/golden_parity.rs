//! Golden parity on the CPU backend (flex): token ids and eos-pooled embeddings of tiny Llama,
//! Mistral and Qwen2 checkpoints equal what transformers computed (tests/fixtures/make_fixtures.py).
#![cfg(feature = "flex")]
use burn::backend::Flex;
use llmql_core::ModelSource;
use llmql_tests::*;

const TOL: f32 = 1e-4;

fn check_family(model: &str) {
    let device = Default::default();
    let results = embed_golden_cases::<Flex>(model, &device);
    assert!(results.len() >= 10, "{model}: too few golden cases");
    for (case, single, batched) in results {
        let d = max_abs_diff(&single, &case.embedding);
        assert!(d <= TOL, "{model}/{}: max |ours - transformers| = {d:e} > {TOL:e}", case.name);
        let p = max_abs_diff(&single, &batched);
        assert!(p <= 1e-5, "{model}/{}: padding changed the embedding by {p:e}", case.name);
    }
}

#[test]
fn llama_gqa_head_dim_llama3_rope_f32_weights() {
    check_family("tiny-llama");
}

#[test]
fn mistral_rope_parameters_bf16_sharded_weights() {
    check_family("tiny-mistral");
}

#[test]
fn qwen2_biases_tied_f16_weights() {
    check_family("tiny-qwen2");
}

#[test]
fn unnormalized_embeddings_match_raw_hidden_states() {
    let device = Default::default();
    for model in FAMILIES {
        let g = golden(model);
        for case in g.cases.iter().take(4) {
            let enc = encoder::<Flex>(model, case.template, case.max_len, false, &device);
            let ids = enc.tokenize(case.kind, case.title.as_deref(), &case.text).unwrap();
            let v = enc.embed_ids_to_vec(&[ids]).remove(0);
            let scale = case.embedding_raw.iter().map(|x| x.abs()).fold(1.0f32, f32::max);
            let d = max_abs_diff(&v, &case.embedding_raw);
            assert!(d <= TOL * scale, "{model}/{}: raw hidden state differs by {d:e}", case.name);
        }
    }
}

#[test]
fn eos_and_bos_resolution() {
    for model in FAMILIES {
        let ck = ModelSource::open(&fixture(model)).unwrap();
        let g = golden(model);
        assert_eq!(ck.tokenizer.eos_id, g.eos_id, "{model}: EOS id");
        assert_eq!(ck.tokenizer.bos_id.is_some(), g.bos_added, "{model}: BOS added by the post-processor");
    }
}

#[test]
fn half_precision_compute_stays_close() {
    // bf16 / f16 compute cannot match f32 to 1e-4; check the direction is preserved.
    let device = Default::default();
    let g = golden("tiny-llama");
    for dtype in [burn::tensor::DType::BF16, burn::tensor::DType::F16] {
        let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
        for case in g.cases.iter().take(3) {
            let enc = llmql_core::Encoder::<Flex>::load(
                &ck,
                llmql_core::EncoderOptions {
                    template: case.template,
                    max_len: case.max_len,
                    truncation: llmql_core::truncation::Truncation::Reference,
                    ..Default::default()
                },
                dtype,
                &device,
            )
            .unwrap();
            let ids = enc.tokenize(case.kind, case.title.as_deref(), &case.text).unwrap();
            let v = enc.embed_ids_to_vec(&[ids]).remove(0);
            let cos: f32 = v.iter().zip(&case.embedding).map(|(a, b)| a * b).sum();
            assert!(cos > 0.99, "{dtype:?} {}: cosine to f32 golden {cos}", case.name);
        }
    }
}
