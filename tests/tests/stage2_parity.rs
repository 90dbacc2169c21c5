//! Stage 2 against PyTorch + PEFT (tests/fixtures/stage2/make_stage2_fixtures.py): a PEFT adapter
//! made by Python loads; token ids, embeddings, the InfoNCE loss and the LoRA gradients match.
#![cfg(feature = "flex")]
use burn::backend::{Autodiff, Flex};
use burn::tensor::DType;
use llmql_core::encoder::embed;
use llmql_core::infonce::infonce_loss;
use llmql_core::model::{DecoderModel, LoadOptions};
use llmql_core::pooling::Pooling;
use llmql_core::{ModelSource, Template};
use llmql_tests::{fixture, max_abs_diff};
use serde_json::Value;

type A = Autodiff<Flex>;

fn ids(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
        .collect()
}

fn mat(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect()
}

#[test]
fn peft_adapter_loss_and_gradients_match_pytorch() {
    let g: Value = serde_json::from_slice(&std::fs::read(fixture("stage2/golden.json")).unwrap()).unwrap();
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let tok = &ck.tokenizer;
    // Texts and token ids as the reference builds them.
    let qmax = g["query_max_len"].as_u64().unwrap() as usize;
    let pmax = g["passage_max_len"].as_u64().unwrap() as usize;
    let q_ids: Vec<Vec<u32>> = g["raw_queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| tok.encode_with_eos(&Template::Llmql.query(q.as_str().unwrap()), qmax).unwrap())
        .collect();
    let p_ids: Vec<Vec<u32>> = g["raw_passages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            tok.encode_with_eos(
                &Template::Llmql.passage(p["title"].as_str().unwrap_or(""), p["text"].as_str().unwrap()),
                pmax,
            )
            .unwrap()
        })
        .collect();
    assert_eq!(q_ids, ids(&g["query_input_ids"]));
    assert_eq!(p_ids, ids(&g["passage_input_ids"]));
    let device = Default::default();
    let base: DecoderModel<A> = ck
        .load_model(
            LoadOptions { dtype: DType::F32, lm_head: false, host_embeddings: false, compute_dtype: None },
            &device,
        )
        .unwrap();
    let group = g["train_group_size"].as_u64().unwrap() as usize;
    let temp = g["temperature"].as_f64().unwrap();
    // Base model: embeddings and loss.
    let q = embed(&base, &q_ids, tok.eos_id, Pooling::Eos, true);
    let p = embed(&base, &p_ids, tok.eos_id, Pooling::Eos, true);
    let loss: f32 = infonce_loss(q, p, group, temp).into_scalar();
    let want = g["base_model"]["loss"].as_f64().unwrap();
    assert!((loss as f64 - want).abs() <= 1e-3 * want.abs().max(1.0), "base loss {loss} vs {want}");
    // With the Python PEFT adapter.
    let model = llmql_core::lora::load_adapter(base, &fixture("stage2/adapter")).unwrap();
    let q = embed(&model, &q_ids, tok.eos_id, Pooling::Eos, true);
    let p = embed(&model, &p_ids, tok.eos_id, Pooling::Eos, true);
    let qv: Vec<f32> = q.clone().into_data().to_vec().unwrap();
    let pv: Vec<f32> = p.clone().into_data().to_vec().unwrap();
    let wq: Vec<f32> = mat(&g["adapter_model"]["q_reps"]).concat();
    let wp: Vec<f32> = mat(&g["adapter_model"]["p_reps"]).concat();
    assert!(max_abs_diff(&qv, &wq) <= 1e-4, "query embeddings: {}", max_abs_diff(&qv, &wq));
    assert!(max_abs_diff(&pv, &wp) <= 1e-4, "passage embeddings: {}", max_abs_diff(&pv, &wp));
    let loss = infonce_loss(q, p, group, temp);
    let lv: f32 = loss.clone().into_scalar();
    let want = g["adapter_model"]["loss"].as_f64().unwrap();
    assert!((lv as f64 - want).abs() <= 1e-3 * want.abs().max(1.0), "adapter loss {lv} vs {want}");
    let grads = loss.backward();
    let check = |name: &str, got: Vec<f32>| {
        let want: Vec<f32> = mat(&g["adapter_model"]["grads"][name]).concat();
        let norm = want.iter().map(|x| x * x).sum::<f32>().sqrt();
        let d = max_abs_diff(&got, &want);
        assert!(d <= 1e-3 * norm.max(1.0), "{name}: max |diff| {d} (tensor norm {norm})");
    };
    let layer = |i: usize| &model.layers[i];
    let q_proj = layer(0).self_attn.q_proj.lora.as_ref().unwrap();
    let down = layer(1).mlp.down_proj.lora.as_ref().unwrap();
    // Ours are [in, r] / [r, out]; PEFT's are A [r, in], B [out, r].
    let gv = |t: burn::tensor::Tensor<Flex, 2>| -> Vec<f32> { t.transpose().into_data().to_vec().unwrap() };
    check("layers.0.self_attn.q_proj.lora_A", gv(q_proj.lora_a.val().grad(&grads).unwrap()));
    check("layers.0.self_attn.q_proj.lora_B", gv(q_proj.lora_b.val().grad(&grads).unwrap()));
    check("layers.1.mlp.down_proj.lora_A", gv(down.lora_a.val().grad(&grads).unwrap()));
    check("layers.1.mlp.down_proj.lora_B", gv(down.lora_b.val().grad(&grads).unwrap()));
}

/// llmql's own LoRA outputs (`tests/fixtures/stage2/ours`: an adapter from `llmql train --lora`, a
/// folder from `llmql merge-lora`) load in PEFT / transformers and give llmql's embeddings
/// (recorded by tests/fixtures/stage2/check_roundtrip.py).
#[test]
fn our_adapter_and_merged_folder_round_trip_through_python() {
    use llmql_core::{Encoder, EncoderOptions, Kind};
    let g: Value = serde_json::from_slice(&std::fs::read(fixture("stage2/roundtrip.json")).unwrap()).unwrap();
    let device = Default::default();
    let opts = |max_len| EncoderOptions {
        template: Template::Llmql,
        max_len,
        truncation: llmql_core::truncation::Truncation::Reference,
        ..Default::default()
    };
    for case in g["cases"].as_array().unwrap() {
        let max_len = case["max_len"].as_u64().unwrap() as usize;
        let kind: Kind = case["kind"].as_str().unwrap().parse().unwrap();
        let title = case["title"].as_str();
        let text = case["text"].as_str().unwrap();
        let base = ModelSource::open(&fixture("tiny-llama")).unwrap();
        let mut with_adapter = Encoder::<Flex>::load(&base, opts(max_len), DType::F32, &device).unwrap();
        with_adapter.model =
            llmql_core::lora::load_adapter(with_adapter.model, &fixture("stage2/ours/adapter")).unwrap();
        let merged_ck = ModelSource::open(&fixture("stage2/ours/merged")).unwrap();
        let merged = Encoder::<Flex>::load(&merged_ck, opts(max_len), DType::F32, &device).unwrap();
        let ids = with_adapter.tokenize(kind, title, text).unwrap();
        assert_eq!(ids, ids_of(&case["input_ids"]));
        let a = with_adapter.embed_ids_to_vec(std::slice::from_ref(&ids)).remove(0);
        let m = merged.embed_ids_to_vec(&[ids]).remove(0);
        let want_peft: Vec<f32> =
            case["peft_adapter"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let want_merged: Vec<f32> =
            case["transformers_merged"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        assert!(max_abs_diff(&a, &want_peft) <= 1e-4, "our adapter vs PEFT: {}", max_abs_diff(&a, &want_peft));
        assert!(
            max_abs_diff(&m, &want_merged) <= 1e-4,
            "our merged folder vs transformers: {}",
            max_abs_diff(&m, &want_merged)
        );
    }
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}
