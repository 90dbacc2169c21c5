//! Mixed precision for training: f32 master weights, bf16 compute (`LoadOptions::compute_dtype`, what
//! `ql-train`/`train --dtype bf16` use for full fine-tuning). Activations are bf16, the weights and their
//! gradients stay f32, and the results stay close to f32.
#![cfg(feature = "flex")]
use burn::backend::{Autodiff, Flex};
use burn::tensor::DType;
use llmql_core::encoder::embed;
use llmql_core::model::LoadOptions;
use llmql_core::pooling::Pooling;
use llmql_core::ql::{build_d2q, ql_loss, LossOn, QlBatch};
use llmql_core::ModelSource;
use llmql_tests::fixture;

type A = Autodiff<Flex>;

#[test]
fn f32_master_weights_with_bf16_compute() {
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let device = Default::default();
    let load =
        |compute| LoadOptions { dtype: DType::F32, lm_head: true, host_embeddings: false, compute_dtype: compute };
    let full = ck.load_model::<A>(load(None), &device).unwrap();
    let mixed = ck.load_model::<A>(load(Some(DType::BF16)), &device).unwrap();
    assert_eq!(mixed.dtype(), DType::F32);
    assert_eq!(mixed.compute_dtype(), DType::BF16);
    let seqs = vec![vec![5u32, 9, 14, 27, 2], vec![7, 8, 2]];
    let eos = ck.tokenizer.eos_id;
    let a: Vec<f32> = embed(&full, &seqs, eos, Pooling::Eos, true).into_data().to_vec().unwrap();
    let b: Vec<f32> = embed(&mixed, &seqs, eos, Pooling::Eos, true).into_data().to_vec().unwrap();
    for r in 0..2 {
        let d = 64;
        let cos: f32 = a[r * d..(r + 1) * d].iter().zip(&b[r * d..(r + 1) * d]).map(|(x, y)| x * y).sum();
        assert!(cos > 0.99, "row {r}: bf16-compute embedding cosine {cos}");
        assert!(a[r * d..(r + 1) * d] != b[r * d..(r + 1) * d], "bf16 compute changed nothing: not in use?");
    }
    // QL loss and gradients: gradients land on the f32 weights, in f32, close to the f32 run's.
    let ex = vec![build_d2q(&ck.tokenizer, "Bees turn nectar into honey.", "how is honey made", 64, 16).unwrap()];
    let batch = QlBatch::<A>::new(&ex, LossOn::All, eos, true, &device);
    let lf = ql_loss(&full, &batch);
    let lm = ql_loss(&mixed, &batch);
    let (vf, vm): (f32, f32) = (lf.clone().into_scalar(), lm.clone().into_scalar());
    assert!((vf - vm).abs() < 0.02 * vf.abs(), "loss f32 {vf} vs bf16 compute {vm}");
    let gf = full.layers[0].mlp.down_proj.weight.val().grad(&lf.backward()).unwrap();
    let gm = mixed.layers[0].mlp.down_proj.weight.val().grad(&lm.backward()).unwrap();
    assert_eq!(gm.dtype(), DType::F32);
    let (gf, gm): (Vec<f32>, Vec<f32>) = (gf.into_data().to_vec().unwrap(), gm.into_data().to_vec().unwrap());
    let dot: f32 = gf.iter().zip(&gm).map(|(x, y)| x * y).sum();
    let cos = dot / (gf.iter().map(|x| x * x).sum::<f32>().sqrt() * gm.iter().map(|x| x * x).sum::<f32>().sqrt());
    assert!(cos > 0.98, "gradient cosine {cos}");
}
