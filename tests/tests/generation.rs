//! Query generation with the QL model (`core/src/ql/generate.rs`) against transformers.
//!
//! Golden values: `tests/fixtures/generate/make_generate_fixtures.py` (transformers' own greedy
//! `generate` for causal attention; a greedy loop with only the separator's keys/values cached for
//! Attention Stop, cross-checked there against a full re-run under the 4D mask). Here: the same
//! prompt ids, the same generated ids, through the KV cache and without it, alone and in a padded
//! batch; sampled generation is deterministic per request whatever the batching. With the `wgpu`
//! feature the same greedy check runs on wgpu (lavapipe in CI): one code path on every backend.
#![cfg(feature = "flex")]
use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::DType;
use llmql_core::model::{DecoderModel, LoadOptions};
use llmql_core::ql::{d2q_prompt, generate, GenerateOptions, Generated, Request, Sampling};
use llmql_core::truncation::{Truncation, TruncationStats};
use llmql_core::ModelSource;
use llmql_tests::fixture;

struct Case {
    passage: String,
    prompt_ids: Vec<u32>,
    causal: Generated,
    attention_stop: Generated,
}

fn golden(model: &str) -> (u32, usize, Vec<Case>) {
    let p = fixture("generate").join(format!("{model}.json"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let ids = |x: &serde_json::Value| -> Vec<u32> {
        x.as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect()
    };
    let gen = |x: &serde_json::Value| Generated { ids: ids(&x["ids"]), finished: x["finished"].as_bool().unwrap() };
    let cases = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            passage: c["passage"].as_str().unwrap().to_string(),
            prompt_ids: ids(&c["prompt_ids"]),
            causal: gen(&c["causal"]),
            attention_stop: gen(&c["attention_stop"]),
        })
        .collect();
    (v["eos_id"].as_u64().unwrap() as u32, v["max_new_tokens"].as_u64().unwrap() as usize, cases)
}

fn load(model: &str) -> (ModelSource, DecoderModel<Flex>) {
    load_on::<Flex>(model, &Default::default())
}

fn load_on<B: Backend>(model: &str, device: &B::Device) -> (ModelSource, DecoderModel<B>) {
    let ck = ModelSource::open(&fixture(model)).unwrap();
    let m = ck.load_model::<B>(LoadOptions { dtype: DType::F32, lm_head: true, ..Default::default() }, device).unwrap();
    (ck, m)
}

fn requests(ck: &ModelSource, cases: &[Case]) -> Vec<Request> {
    let stats = TruncationStats::default();
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let prompt = d2q_prompt(&ck.tokenizer, &c.passage, 200, Truncation::Content, &stats).unwrap();
            assert_eq!(prompt, c.prompt_ids, "prompt ids of {:?}", c.passage);
            Request { prompt, key: i as u64 }
        })
        .collect()
}

/// Greedy generation on backend `B` equals transformers' ids for every fixture case, with Attention
/// Stop and causal attention, through each KV-cache mode and batch size given.
fn check_greedy<B: Backend>(device: &B::Device, kv_caches: &[bool], batch_sizes: &[usize]) {
    for model_name in ["tiny-llama", "tiny-qwen2"] {
        let (eos, max_new, cases) = golden(model_name);
        let (ck, model) = load_on::<B>(model_name, device);
        assert_eq!(ck.tokenizer.eos_id, eos);
        let reqs = requests(&ck, &cases);
        for attention_stop in [false, true] {
            for &kv_cache in kv_caches {
                for &batch_size in batch_sizes {
                    let opts = GenerateOptions {
                        max_new_tokens: max_new,
                        batch_size,
                        attention_stop,
                        kv_cache,
                        no_repeat_ngram: 0,
                        sampling: Sampling::Greedy,
                        ..Default::default()
                    };
                    let out = generate(&model, eos, &reqs, &opts, |_| {}).unwrap();
                    for (c, g) in cases.iter().zip(&out) {
                        let want = if attention_stop { &c.attention_stop } else { &c.causal };
                        assert_eq!(
                            g, want,
                            "{model_name}, attention stop {attention_stop}, kv cache {kv_cache}, batch {batch_size}: {:?}",
                            c.passage
                        );
                    }
                }
            }
        }
        println!("{model_name}: {} greedy generations equal transformers' (causal and Attention Stop)", cases.len());
    }
}

#[test]
fn greedy_generation_equals_transformers() {
    check_greedy::<Flex>(&Default::default(), &[true, false], &[1, 3, 16]);
}

/// The same loop on wgpu: the KV cache in a padded batch (few shapes: wgpu JIT-compiles each kernel).
#[cfg(feature = "wgpu")]
#[test]
fn greedy_generation_on_wgpu_equals_transformers() {
    check_greedy::<burn::backend::Wgpu>(&burn::backend::wgpu::WgpuDevice::DefaultDevice, &[true], &[16]);
}

#[test]
fn sampling_is_deterministic_per_request_and_cache_independent() {
    let (eos, _, cases) = golden("tiny-llama");
    let (ck, model) = load("tiny-llama");
    let reqs = requests(&ck, &cases);
    for attention_stop in [true, false] {
        let opts = |batch_size, kv_cache, seed| GenerateOptions {
            max_new_tokens: 10,
            batch_size,
            attention_stop,
            kv_cache,
            seed,
            no_repeat_ngram: 2,
            sampling: Sampling::TopP { top_p: 0.9, temperature: 1.0 },
            ..Default::default()
        };
        let base = generate(&model, eos, &reqs, &opts(16, true, 7), |_| {}).unwrap();
        assert_eq!(base, generate(&model, eos, &reqs, &opts(2, true, 7), |_| {}).unwrap(), "batching");
        assert_eq!(base, generate(&model, eos, &reqs, &opts(16, false, 7), |_| {}).unwrap(), "no KV cache");
        // One request alone draws what it drew in the batch (its own random stream).
        let alone = generate(&model, eos, &reqs[3..4], &opts(1, true, 7), |_| {}).unwrap();
        assert_eq!(alone[0], base[3]);
        let other = generate(&model, eos, &reqs, &opts(16, true, 8), |_| {}).unwrap();
        assert_ne!(base, other, "another seed draws other queries");
        let greedy =
            &cases.iter().map(|c| if attention_stop { &c.attention_stop } else { &c.causal }).collect::<Vec<_>>();
        assert!(
            base.iter().zip(greedy).any(|(s, g)| s.ids[..] != g.ids[..10.min(g.ids.len())]),
            "sampling is not greedy"
        );
        // No repeated bigram in any sampled query.
        for g in &base {
            let mut seen = std::collections::HashSet::new();
            assert!(g.ids.windows(2).all(|w| seen.insert((w[0], w[1]))), "repeated bigram in {:?}", g.ids);
        }
    }
}

#[test]
fn generation_rejects_a_prompt_without_separator() {
    let (_, model) = load("tiny-llama");
    let opts = GenerateOptions::default();
    let err = generate(&model, 2, &[Request { prompt: vec![1, 5, 6], key: 0 }], &opts, |_| {}).unwrap_err();
    assert!(err.to_string().contains("separator"), "{err}");
    let bad = GenerateOptions { sampling: Sampling::TopP { top_p: 1.5, temperature: 1.0 }, ..opts };
    assert!(generate(&model, 2, &[Request { prompt: vec![1, 2], key: 0 }], &bad, |_| {}).is_err());
}
