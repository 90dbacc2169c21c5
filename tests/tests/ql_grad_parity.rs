//! One stage-1 (QL modeling) training step with LoRA and the Attention Stop mask against PyTorch +
//! PEFT (tests/fixtures/ql/make_ql_grad_fixtures.py): a right-padded batch of three d2q examples
//! through tiny-llama with a PEFT adapter (lora_A and lora_B both non-zero), the loss
//! `-(sum of target log-probs) / (labelled tokens of the step)` exactly as `ql_train` computes it,
//! and the gradient of every lora_A / lora_B weight, in both `--loss-on` modes. The same step
//! without the Attention Stop mask must miss the golden values (the test cannot pass with the mask
//! ignored).
#![cfg(feature = "flex")]
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor};
use llmql_core::model::{DecoderModel, LoadOptions};
use llmql_core::ql::example::{build_d2q, LossOn, QlExample};
use llmql_core::ql::loss::{target_log_probs, QlBatch};
use llmql_core::ModelSource;
use llmql_tests::{fixture, max_abs_diff};
use serde_json::Value;

type A = Autodiff<Flex>;

/// Loss relative tolerance; gradient tolerance relative to each gradient tensor's L2 norm.
const LOSS_TOL: f64 = 1e-4;
const GRAD_TOL: f32 = 1e-4;

const MODULES: [(&str, &str); 7] = [
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
    ("mlp", "down_proj"),
];

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt() as f32
}

/// The step's loss as `ql_train` computes it (one micro-batch, so the step's target count is the
/// batch's): `-(sum of target log-probs) / n_targets`.
fn step_loss(model: &DecoderModel<A>, batch: &QlBatch<A>) -> Tensor<A, 1> {
    target_log_probs(model, batch).sum().neg() / (batch.num_targets().max(1) as f64)
}

/// Every LoRA gradient of `model` after `loss.backward()`, keyed by PEFT's name
/// (`base_model.model.model.layers.N.<module>.lora_{A,B}.weight`) in PEFT's layout
/// (A `[r, in]`, B `[out, r]`; ours are A `[in, r]`, B `[r, out]`).
fn lora_grads(model: &DecoderModel<A>, loss: Tensor<A, 1>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let grads = loss.backward();
    // Base weights are frozen.
    assert!(model.lm_head.as_ref().unwrap().weight.val().grad(&grads).is_none(), "lm_head has a gradient");
    assert!(model.embed_tokens.val().grad(&grads).is_none(), "embed_tokens has a gradient");
    let mut out = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        for (block, name) in MODULES {
            let lin = match name {
                "q_proj" => &layer.self_attn.q_proj,
                "k_proj" => &layer.self_attn.k_proj,
                "v_proj" => &layer.self_attn.v_proj,
                "o_proj" => &layer.self_attn.o_proj,
                "gate_proj" => &layer.mlp.gate_proj,
                "up_proj" => &layer.mlp.up_proj,
                _ => &layer.mlp.down_proj,
            };
            assert!(lin.weight.val().grad(&grads).is_none(), "layer {i} {name}: base weight has a gradient");
            let ad = lin.lora.as_ref().unwrap_or_else(|| panic!("layer {i} {name}: no adapter"));
            let prefix = format!("base_model.model.model.layers.{i}.{block}.{name}");
            for (ab, p) in [("lora_A", &ad.lora_a), ("lora_B", &ad.lora_b)] {
                let g: Tensor<Flex, 2> =
                    p.val().grad(&grads).unwrap_or_else(|| panic!("{prefix}.{ab}: no gradient")).transpose();
                let shape = g.dims().to_vec();
                out.push((format!("{prefix}.{ab}.weight"), shape, g.into_data().to_vec().unwrap()));
            }
        }
    }
    out
}

/// Largest `max |diff| / ||want||` over the gradients, and the name where it happens.
fn worst_grad(got: &[(String, Vec<usize>, Vec<f32>)], want: &Value) -> (f32, String) {
    let mut worst = (0f32, String::new());
    for (name, _, g) in got {
        let w = f32s(&want[name]["values"]);
        let r = max_abs_diff(g, &w) / norm(&w).max(f32::MIN_POSITIVE);
        if r > worst.0 {
            worst = (r, name.clone());
        }
    }
    worst
}

#[test]
fn ql_lora_step_with_attention_stop_matches_peft() {
    let g: Value = serde_json::from_slice(&std::fs::read(fixture("ql/grad.json")).unwrap()).unwrap();
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let tok = &ck.tokenizer;
    assert_eq!(tok.eos_id as u64, g["eos_id"].as_u64().unwrap());
    let pad_id = g["pad_id"].as_u64().unwrap() as u32;
    assert_eq!(pad_id, tok.eos_id, "stage 1 pads with EOS");

    // Layout: the Rust builder gives the reference's ids and separator positions.
    let examples: Vec<QlExample> = g["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap();
            let (p, q) = (e["p_max_len"].as_u64().unwrap() as usize, e["q_max_len"].as_u64().unwrap() as usize);
            let ex = build_d2q(tok, e["passage"].as_str().unwrap(), e["query"].as_str().unwrap(), p, q).unwrap();
            assert_eq!(ex.input_ids, u32s(&e["input_ids"]), "{name}: token ids differ from the reference layout");
            assert_eq!(ex.sep_pos as u64, e["sep_pos"].as_u64().unwrap(), "{name}: separator position");
            ex
        })
        .collect();
    assert!(examples.windows(2).all(|w| w[0].len() != w[1].len()), "the batch must need padding");

    let device = Default::default();
    let base: DecoderModel<A> = ck
        .load_model(
            LoadOptions { dtype: DType::F32, lm_head: true, host_embeddings: false, compute_dtype: None },
            &device,
        )
        .unwrap();
    let model = llmql_core::lora::load_adapter(base, &fixture("ql/grad-adapter")).unwrap();

    let mut losses = Vec::new();
    for (mode, on) in [("all", LossOn::All), ("query", LossOn::Query)] {
        let want = &g["modes"][mode];
        let want_loss = want["loss"].as_f64().unwrap();
        let want_grads = &want["grads"];

        // With Attention Stop: loss and every LoRA gradient.
        let batch = QlBatch::<A>::new(&examples, on, pad_id, true, &device);
        assert_eq!(batch.num_targets() as u64, want["n_labelled"].as_u64().unwrap(), "{mode}: labelled tokens");
        let loss = step_loss(&model, &batch);
        let lv: f32 = loss.clone().into_scalar();
        let loss_err = (lv as f64 - want_loss).abs() / want_loss.abs();
        assert!(loss_err <= LOSS_TOL, "{mode}: loss {lv} vs PEFT {want_loss} (relative {loss_err:.2e})");
        let got = lora_grads(&model, loss);
        assert_eq!(got.len(), want_grads.as_object().unwrap().len(), "{mode}: number of LoRA gradients");
        let (mut a_nonzero, mut b_nonzero) = (false, false);
        for (name, shape, gv) in &got {
            let w = &want_grads[name];
            assert!(!w.is_null(), "{mode}: {name} missing from the fixture");
            let wshape: Vec<usize> =
                w["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            assert_eq!(shape, &wshape, "{mode}: {name} shape");
            let wv = f32s(&w["values"]);
            let n = norm(&wv);
            let d = max_abs_diff(gv, &wv);
            assert!(d <= GRAD_TOL * n, "{mode}: {name}: max |diff| {d:.3e} > {GRAD_TOL:e} x norm {n:.3e}");
            if n > 1e-6 && norm(gv) > 1e-6 {
                if name.contains(".lora_A.") {
                    a_nonzero = true;
                } else {
                    b_nonzero = true;
                }
            }
        }
        assert!(a_nonzero && b_nonzero, "{mode}: lora_A and lora_B gradients must both be non-zero");
        let (worst, at) = worst_grad(&got, want_grads);
        eprintln!("{mode}: loss {lv} vs {want_loss} (relative {loss_err:.2e}); worst gradient max|diff|/norm {worst:.2e} ({at})");

        // Mutation check: the same step without the Attention Stop mask misses the golden values
        // (and gives PyTorch's causal-mask loss, so the flag is what makes the difference).
        let causal = QlBatch::<A>::new(&examples, on, pad_id, false, &device);
        let loss = step_loss(&model, &causal);
        let cv: f32 = loss.clone().into_scalar();
        let off = (cv as f64 - want_loss).abs() / want_loss.abs();
        assert!(
            off > 10.0 * LOSS_TOL,
            "{mode}: loss without Attention Stop {cv} is within tolerance of the AS loss {want_loss}"
        );
        let want_causal = want["loss_no_attention_stop"].as_f64().unwrap();
        let causal_err = (cv as f64 - want_causal).abs() / want_causal.abs();
        assert!(causal_err <= LOSS_TOL, "{mode}: causal loss {cv} vs PyTorch's {want_causal}");
        let (worst_off, at_off) = worst_grad(&lora_grads(&model, loss), want_grads);
        assert!(
            worst_off > 10.0 * GRAD_TOL,
            "{mode}: gradients without Attention Stop match the AS gradients ({worst_off:.2e})"
        );
        eprintln!("{mode}: without AS: loss {cv} (relative diff to AS golden {off:.2e}; vs PyTorch causal {causal_err:.2e}), worst gradient {worst_off:.2e} ({at_off})");
        losses.push(lv as f64);
    }
    assert!((losses[0] - losses[1]).abs() > 1e-3, "the two loss modes must give different losses: {losses:?}");
}
