//! Gradient checkpointing per decoder layer (`--gradient-checkpointing`) changes memory, not
//! gradients: for the QL loss with every weight trainable (token embeddings and tied head included,
//! f32 and bf16 compute) and for InfoNCE over two encoder calls with LoRA dropout, the gradients
//! equal those of one ordinary backward pass with the same randomness.
#![cfg(feature = "flex")]
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Tensor};
use llmql_core::encoder::embed_run;
use llmql_core::infonce::infonce_loss;
use llmql_core::lora::{attach_lora, LoraConfig};
use llmql_core::model::{DecoderModel, LoadOptions};
use llmql_core::pooling::Pooling;
use llmql_core::ql::loss::target_log_probs_run;
use llmql_core::ql::{build_d2q, ql_loss, LossOn, QlBatch};
use llmql_core::train::grad_checkpoint::GradCheckpoint;
use llmql_core::ModelSource;
use llmql_tests::fixture;
use std::collections::BTreeMap;

type A = Autodiff<Flex>;

/// Every gradient by parameter id, as f32 on the host.
fn host(m: &DecoderModel<A>, g: &GradientsParams) -> BTreeMap<ParamId, Vec<f32>> {
    struct Collect<'a>(&'a GradientsParams, BTreeMap<ParamId, Vec<f32>>);
    impl ModuleVisitor<A> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<A, D>>) {
            if let Some(g) = self.0.get::<Flex, D>(p.id) {
                self.1.insert(p.id, g.cast(DType::F32).into_data().to_vec().unwrap());
            }
        }
    }
    let mut c = Collect(g, BTreeMap::new());
    m.visit(&mut c);
    c.1
}

fn assert_close(a: &BTreeMap<ParamId, Vec<f32>>, b: &BTreeMap<ParamId, Vec<f32>>, tol: f32, what: &str) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: different parameters have gradients"
    );
    let mut nonzero = 0;
    for (id, x) in a {
        let y = &b[id];
        let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        let diff = x.iter().zip(y).map(|(u, v)| (u - v) * (u - v)).sum::<f32>().sqrt();
        assert!(diff <= tol * norm.max(1e-6), "{what}: {id:?} (len {}) differs by {diff} (norm {norm})", x.len());
        nonzero += (norm > 0.0) as usize;
    }
    assert!(nonzero > a.len() / 2, "{what}: most gradients are zero ({nonzero} of {})", a.len());
}

#[test]
fn ql_loss_gradients_with_and_without_checkpointing_are_equal() {
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let device = Default::default();
    let eos = ck.tokenizer.eos_id;
    let ex = vec![
        build_d2q(&ck.tokenizer, "Bees turn nectar into honey inside the hive.", "how is honey made", 64, 16).unwrap(),
        build_d2q(
            &ck.tokenizer,
            "The Nile flows north into the Mediterranean.",
            "which way does the nile flow",
            64,
            16,
        )
        .unwrap(),
    ];
    for (compute, tol) in [(None, 1e-5), (Some(DType::BF16), 1e-2)] {
        let model = ck
            .load_model::<A>(
                LoadOptions { dtype: DType::F32, lm_head: true, host_embeddings: false, compute_dtype: compute },
                &device,
            )
            .unwrap();
        let batch = QlBatch::<A>::new(&ex, LossOn::All, eos, true, &device);
        let plain = host(&model, &GradientsParams::from_grads(ql_loss(&model, &batch).backward(), &model));
        let c = GradCheckpoint::<A>::start(true, 11);
        let loss = target_log_probs_run(&model, &batch, c.layers()).mean().neg();
        let checkpointed = host(&model, &c.backward(loss, &model));
        assert_eq!(plain.len(), model.num_params_tensors(), "every weight is trainable here");
        assert_close(&plain, &checkpointed, tol, &format!("QL, compute {compute:?}"));
    }
}

trait CountTensors {
    fn num_params_tensors(&self) -> usize;
}
impl CountTensors for DecoderModel<A> {
    fn num_params_tensors(&self) -> usize {
        struct N(usize);
        impl ModuleVisitor<A> for N {
            fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<A, D>>) {
                self.0 += 1;
            }
        }
        let mut n = N(0);
        self.visit(&mut n);
        n.0
    }
}

#[test]
fn infonce_lora_dropout_gradients_equal_the_same_randomness_without_checkpointing() {
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let device = Default::default();
    let eos = ck.tokenizer.eos_id;
    let base = ck
        .load_model::<A>(
            LoadOptions { dtype: DType::F32, lm_head: false, host_embeddings: false, compute_dtype: None },
            &device,
        )
        .unwrap();
    let model =
        attach_lora(base, &LoraConfig { r: 4, lora_alpha: 8.0, lora_dropout: 0.3, ..Default::default() }, 3).unwrap();
    // B starts at zero: give it values so that the adapters (and their dropout) matter.
    let model = llmql_tests::fill_trainable(model);
    let tok = |s: &str| ck.tokenizer.encode_with_eos(s, 32).unwrap();
    let qs = vec![tok("query: how is honey made"), tok("query: which way does the nile flow")];
    let ps = vec![
        tok("passage: Bees turn nectar into honey."),
        tok("passage: Granite is an igneous rock."),
        tok("passage: The Nile flows north."),
        tok("passage: Honey never spoils, say archaeologists who found it in tombs."),
    ];
    let run = |c: GradCheckpoint<A>| {
        let q = embed_run(&model, c.layers(), &qs, eos, Pooling::Eos, true);
        let p = embed_run(&model, c.layers(), &ps, eos, Pooling::Eos, true);
        let loss = infonce_loss(q, p, 2, 0.05);
        host(&model, &c.backward(loss, &model))
    };
    let reference = run(GradCheckpoint::reference(21));
    let checkpointed = run(GradCheckpoint::start(true, 21));
    assert_close(&reference, &checkpointed, 1e-5, "InfoNCE with LoRA dropout");
    // The masks matter (so the equality above is about the same masks being drawn again).
    let other = run(GradCheckpoint::reference(22));
    let (k, a) = reference.iter().next().unwrap();
    assert!(
        a.iter().zip(&other[k]).any(|(x, y)| (x - y).abs() > 1e-6),
        "dropout had no effect: the test proves nothing"
    );
}
