//! LoRA: a fresh adapter (B = 0) leaves embeddings exactly unchanged; merging equals the factored
//! computation; PEFT files round-trip; base weights stay frozen during training.
#![cfg(feature = "flex")]
use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Param};
use burn::tensor::{DType, Distribution, Tensor};
use llmql_core::lora::{attach_lora, load_adapter, merge_lora, save_adapter, LoraConfig};
use llmql_core::model::{DecoderModel, LoadOptions};
use llmql_core::{Encoder, EncoderOptions, Kind, ModelSource, Template};
use llmql_tests::{fixture, max_abs_diff};

fn base(model: &str) -> (ModelSource, DecoderModel<Flex>) {
    let ck = ModelSource::open(&fixture(model)).unwrap();
    let m = ck
        .load_model::<Flex>(
            LoadOptions { dtype: DType::F32, lm_head: false, host_embeddings: false, compute_dtype: None },
            &Default::default(),
        )
        .unwrap();
    (ck, m)
}

fn embed(ck: &ModelSource, m: DecoderModel<Flex>) -> Vec<Vec<f32>> {
    let enc = Encoder {
        model: m,
        tokenizer: ck.tokenizer.clone(),
        options: EncoderOptions { template: Template::Raw, max_len: 32, ..Default::default() },
        host_embeddings: None,
        truncated: Default::default(),
    };
    enc.encode_texts(Kind::Passage, &[(Some("Bees"), "Bees make honey."), (None, "Rivers run to the sea.")], 2).unwrap()
}

/// Gives every adapter a random B so that it changes the model.
fn randomize_b(mut m: DecoderModel<Flex>) -> DecoderModel<Flex> {
    for l in m.layers.iter_mut() {
        for lin in [&mut l.self_attn.q_proj, &mut l.self_attn.v_proj, &mut l.mlp.down_proj] {
            if let Some(ad) = lin.lora.as_mut() {
                let dims = ad.lora_b.val().dims();
                let t = Tensor::<Flex, 2>::random(dims, Distribution::Normal(0.0, 0.2), &Default::default());
                ad.lora_b = Param::from_tensor(t);
            }
        }
    }
    m
}

#[test]
fn fresh_adapter_changes_nothing() {
    for model in ["tiny-llama", "tiny-qwen2"] {
        let (ck, m) = base(model);
        let before = embed(&ck, m.clone());
        let after = embed(&ck, attach_lora(m, &LoraConfig::default(), 1).unwrap());
        for (a, b) in before.iter().zip(&after) {
            assert_eq!(a, b, "{model}: B = 0 must leave embeddings exactly unchanged");
        }
    }
}

#[test]
fn merge_equals_factored_and_peft_files_round_trip() {
    let (ck, m) = base("tiny-llama");
    let cfg = LoraConfig { r: 4, lora_alpha: 8.0, lora_dropout: 0.1, ..Default::default() };
    let with = randomize_b(attach_lora(m.clone(), &cfg, 3).unwrap());
    let factored = embed(&ck, with.clone());
    let merged = embed(&ck, merge_lora(with.clone()));
    let plain = embed(&ck, m.clone());
    assert!(max_abs_diff(&factored[0], &plain[0]) > 1e-3, "the adapter must matter");
    for (a, b) in factored.iter().zip(&merged) {
        assert!(max_abs_diff(a, b) <= 1e-5, "merged vs factored: {}", max_abs_diff(a, b));
    }
    let dir = tempfile::tempdir().unwrap();
    save_adapter(&with, &cfg, "tiny-llama", dir.path()).unwrap();
    let conf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(conf["peft_type"], "LORA");
    assert_eq!(conf["r"], 4);
    assert_eq!(conf["task_type"], "FEATURE_EXTRACTION"); // the Tevatron (AutoModel) layout by default
    let w = llmql_core::weights::WeightFiles::open_files(dir.path(), &[dir.path().join("adapter_model.safetensors")])
        .unwrap();
    let (shape_a, _) = w.info("base_model.model.layers.0.self_attn.q_proj.lora_A.weight").unwrap();
    let (shape_b, _) = w.info("base_model.model.layers.0.self_attn.q_proj.lora_B.weight").unwrap();
    assert_eq!(shape_a, vec![4, 64]); // [r, in]
    assert_eq!(shape_b, vec![128, 4]); // [out, r]: q_proj has 4 heads x head_dim 32
    assert_eq!(w.names().len(), 2 * 7 * 2);
    let reloaded = embed(&ck, load_adapter(m, dir.path()).unwrap());
    for (a, b) in factored.iter().zip(&reloaded) {
        assert!(max_abs_diff(a, b) <= 1e-6);
    }
}

#[test]
fn only_adapters_receive_gradients() {
    type A = Autodiff<Flex>;
    let ck = ModelSource::open(&fixture("tiny-qwen2")).unwrap();
    let m = ck
        .load_model::<A>(
            LoadOptions { dtype: DType::F32, lm_head: false, host_embeddings: false, compute_dtype: None },
            &Default::default(),
        )
        .unwrap();
    let m = attach_lora(m, &LoraConfig { r: 2, lora_alpha: 4.0, lora_dropout: 0.0, ..Default::default() }, 0).unwrap();
    let batch = llmql_core::encoder::PaddedBatch::<A>::new(&[vec![5, 6, 7, 0]], 0, &Default::default());
    let h = m.forward(batch.input_ids, batch.positions, &llmql_core::model::AttentionMask::Causal);
    let grads = h.sum().backward();
    let ad = m.layers[0].self_attn.q_proj.lora.as_ref().unwrap();
    assert!(ad.lora_a.val().grad(&grads).is_none() || ad.lora_b.val().grad(&grads).is_some());
    assert!(ad.lora_b.val().grad(&grads).is_some(), "LoRA B must get a gradient");
    assert!(m.layers[0].self_attn.q_proj.weight.val().grad(&grads).is_none(), "base weights must be frozen");
    assert!(m.embed_tokens.val().grad(&grads).is_none());
    let _ = m.valid();
}

#[test]
fn adapters_stay_f32_on_a_bf16_base() {
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    type A = Autodiff<Flex>;
    let m = ck
        .load_model::<A>(
            LoadOptions { dtype: DType::BF16, lm_head: false, host_embeddings: false, compute_dtype: None },
            &Default::default(),
        )
        .unwrap();
    let m = attach_lora(m, &LoraConfig { r: 4, lora_alpha: 8.0, lora_dropout: 0.0, ..Default::default() }, 1).unwrap();
    let ad = m.layers[0].self_attn.q_proj.lora.as_ref().unwrap();
    assert_eq!(ad.lora_a.val().dtype(), DType::F32);
    assert_eq!(ad.lora_b.val().dtype(), DType::F32);
    assert_eq!(m.layers[0].self_attn.q_proj.weight.val().dtype(), DType::BF16);
    // Forward and backward run; only the (f32) adapters get gradients.
    let q = llmql_core::encoder::embed(&m, &[vec![5, 6, 7, 2]], 2, llmql_core::pooling::Pooling::Eos, true);
    let grads = q.sum().backward();
    let ga = m.layers[0].self_attn.q_proj.lora.as_ref().unwrap().lora_b.val().grad(&grads).unwrap();
    assert_eq!(ga.dtype(), DType::F32);
    assert!(m.layers[0].self_attn.q_proj.weight.val().grad(&grads).is_none());
    let merged = merge_lora(m);
    assert_eq!(merged.layers[0].self_attn.q_proj.weight.val().dtype(), DType::BF16);
}
