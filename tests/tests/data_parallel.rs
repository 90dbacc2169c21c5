//! Data parallelism on the CPU: a step split over 2 peers (threads, each with its own copy of the
//! model, joined by Burn's collective all-reduce, `burn::collective`) gives the same loss and the same summed gradients as
//! one device on the concatenated batch — InfoNCE with cross-device negatives, and the per-token QL
//! loss. (On GPUs the same code runs, one peer per device.)
#![cfg(feature = "flex")]
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, Tensor};
use llmql_core::encoder::embed;
use llmql_core::infonce::infonce_loss;
use llmql_core::lora::{attach_lora, LoraConfig};
use llmql_core::model::{DecoderModel, LoadOptions};
use llmql_core::pooling::Pooling;
use llmql_core::train::data_parallel::{
    all_gather_counts, all_gather_rows, broadcast_trainable, infonce_data_parallel, sync_gradients,
    sync_gradients_in_buckets, token_weighted, BurnCollective, Collective,
};
use llmql_core::{ModelSource, Template};
use llmql_tests::fixture;
use std::collections::BTreeMap;

/// Gradients by parameter, on the host.
type Grads = BTreeMap<ParamId, Vec<f32>>;

type A = Autodiff<Flex>;

fn model(ck: &ModelSource, lm_head: bool) -> DecoderModel<A> {
    model_on::<A>(ck, lm_head, &Default::default())
}

fn model_on<B: AutodiffBackend>(ck: &ModelSource, lm_head: bool, device: &B::Device) -> DecoderModel<B> {
    let m = ck
        .load_model::<B>(
            LoadOptions { dtype: DType::F32, lm_head, host_embeddings: false, compute_dtype: None },
            device,
        )
        .unwrap();
    let m = attach_lora(m, &LoraConfig { r: 4, lora_alpha: 8.0, lora_dropout: 0.0, ..Default::default() }, 7).unwrap();
    // Burn's RNG is one per backend, shared by the test threads: fixed adapter values instead.
    llmql_tests::fill_trainable(m)
}

/// Gradients by parameter id, on the host.
fn host<B: AutodiffBackend>(m: &DecoderModel<B>, g: &GradientsParams) -> BTreeMap<ParamId, Vec<f32>> {
    struct Collect<'a>(&'a GradientsParams, BTreeMap<ParamId, Vec<f32>>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            if let Some(g) = self.0.get::<B::InnerBackend, D>(p.id) {
                self.1.insert(p.id, g.into_data().convert::<f32>().to_vec().unwrap());
            }
        }
    }
    let mut c = Collect(g, BTreeMap::new());
    m.visit(&mut c);
    c.1
}

/// Runs `f` once per peer of a `world`-peer group, each in its own thread; results in rank order.
fn on_peers<T: Send>(world: usize, f: impl Fn(BurnCollective) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let f = &f;
        let hs: Vec<_> = BurnCollective::group(world, None).into_iter().map(|c| s.spawn(move || f(c))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn compare(single: &BTreeMap<ParamId, Vec<f32>>, dp: &BTreeMap<ParamId, Vec<f32>>, what: &str) {
    assert_eq!(single.len(), dp.len(), "{what}: different sets of gradients");
    assert!(!single.is_empty());
    let mut bad = Vec::new();
    for (id, a) in single {
        let b = &dp[id];
        let norm = a.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        let diff = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt();
        if diff > 1e-4 * norm + 1e-7 {
            bad.push(format!("{id:?} (len {}): differs by {diff} (norm {norm})", a.len()));
        }
    }
    assert!(bad.is_empty(), "{what}: {} of {} gradients differ:\n{}", bad.len(), single.len(), bad.join("\n"));
}

fn texts(ck: &ModelSource) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let tok = &ck.tokenizer;
    let qs =
        ["how do bees make honey", "where do rivers go", "what is a volcano", "why is the sky blue", "who builds dams"];
    let q: Vec<Vec<u32>> = qs.iter().map(|x| tok.encode_with_eos(&Template::Llmql.query(x), 32).unwrap()).collect();
    let p: Vec<Vec<u32>> = (0..qs.len() * 2)
        .map(|i| {
            tok.encode_with_eos(&Template::Llmql.passage("", &format!("passage {i} about {} and more", qs[i / 2])), 48)
                .unwrap()
        })
        .collect();
    (q, p)
}

#[test]
fn infonce_over_two_peers_equals_one_device() {
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let eos = ck.tokenizer.eos_id;
    let (qs, ps) = texts(&ck);
    let group = 2;
    let t = 0.05;
    // One device, the whole batch.
    let m = model(&ck, false);
    let loss = infonce_loss(embed(&m, &qs, eos, Pooling::Eos, true), embed(&m, &ps, eos, Pooling::Eos, true), group, t);
    let want: f32 = loss.clone().into_scalar();
    let single = host(&m, &GradientsParams::from_grads(loss.backward(), &m));
    // Two peers: 3 and 2 queries (uneven on purpose), each with its queries' passages.
    let split = [0..3, 3..5];
    let results: Vec<(f64, Grads, Grads)> = on_peers(2, |c| {
        let r = split[c.rank()].clone();
        // Random LoRA init is not reproducible across threads (one RNG): rank 0's wins.
        let m = broadcast_trainable(&c, model(&ck, false));
        let q = embed(&m, &qs[r.clone()], eos, Pooling::Eos, true);
        let p = embed(&m, &ps[r.start * group..r.end * group], eos, Pooling::Eos, true);
        let (loss, surrogate) = infonce_data_parallel(&c, q, p, group, t);
        let grads = sync_gradients(&c, &m, GradientsParams::from_grads(surrogate.backward(), &m));
        // Small buckets (many all-reduces, parameters split across bucket boundaries) sum the same.
        let q = embed(&m, &qs[r.clone()], eos, Pooling::Eos, true);
        let p = embed(&m, &ps[r.start * group..r.end * group], eos, Pooling::Eos, true);
        let (_, surrogate) = infonce_data_parallel(&c, q, p, group, t);
        let small = sync_gradients_in_buckets(&c, &m, GradientsParams::from_grads(surrogate.backward(), &m), 300);
        (loss, host(&m, &grads), host(&m, &small))
    });
    for (rank, (loss, grads, small)) in results.iter().enumerate() {
        assert!((*loss as f32 - want).abs() <= 1e-5 * want.abs().max(1.0), "rank {rank}: loss {loss} vs {want}");
        compare(&single, grads, &format!("InfoNCE rank {rank}"));
        assert!(grads == small, "rank {rank}: bucket size changed the summed gradients");
    }
    // Without the cross-device negatives (each peer alone) the loss is a different number: the
    // gather matters.
    let m = model(&ck, false);
    let alone: f32 = infonce_loss(
        embed(&m, &qs[0..3], eos, Pooling::Eos, true),
        embed(&m, &ps[0..6], eos, Pooling::Eos, true),
        group,
        t,
    )
    .into_scalar();
    assert!((alone - want).abs() > 1e-3, "test is not sensitive to the gather");
}

#[test]
fn ql_loss_over_two_peers_equals_one_device() {
    use llmql_core::ql::example::{build_d2q, LossOn};
    use llmql_core::ql::loss::{ql_loss, QlBatch};
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let tok = &ck.tokenizer;
    let pairs = [
        ("Worker bees turn nectar into honey inside the hive.", "how do bees make honey"),
        ("Rivers carry rain water down to the sea.", "where do rivers go"),
        ("A volcano is an opening where molten rock reaches the surface of the earth.", "what is a volcano"),
        ("Beavers build dams of wood and mud across streams.", "who builds dams"),
    ];
    let examples: Vec<_> = pairs.iter().map(|(p, q)| build_d2q(tok, p, q, 64, 16).unwrap()).collect();
    let device = Default::default();
    let m = model(&ck, true);
    // Per-token mean over the whole batch, as one device computes it.
    let batch = QlBatch::<A>::new(&examples, LossOn::All, tok.eos_id, true, &device);
    let loss = ql_loss(&m, &batch);
    let want: f32 = loss.clone().into_scalar();
    let single = host(&m, &GradientsParams::from_grads(loss.backward(), &m));
    // Two peers of unequal token counts (1 and 3 examples).
    let split = [0..1, 1..4];
    let results: Vec<(f32, BTreeMap<ParamId, Vec<f32>>)> = on_peers(2, |c| {
        let r = split[c.rank()].clone();
        let m = broadcast_trainable(&c, model(&ck, true));
        let batch = QlBatch::<A>::new(&examples[r], LossOn::All, ck.tokenizer.eos_id, true, &Default::default());
        let (weighted, _) = token_weighted(&c, ql_loss(&m, &batch), batch.num_targets());
        // The whole batch's loss: the sum of the weighted local losses.
        let total: f32 = c.all_reduce_sum(weighted.clone().inner()).into_scalar();
        let grads = sync_gradients(&c, &m, GradientsParams::from_grads(weighted.backward(), &m));
        (total, host(&m, &grads))
    });
    for (rank, (loss, grads)) in results.iter().enumerate() {
        assert!((loss - want).abs() <= 1e-5 * want.abs().max(1.0), "rank {rank}: loss {loss} vs {want}");
        compare(&single, grads, &format!("QL rank {rank}"));
    }
}

#[test]
fn all_gather_rows_concatenates_in_rank_order() {
    let rows: Vec<Vec<f32>> = on_peers(3, |c| {
        let n = [2usize, 0, 1][c.rank()];
        let v: Vec<f32> = (0..n * 2).map(|i| (c.rank() * 10 + i) as f32).collect();
        let local = Tensor::<Flex, 2>::from_data(burn::tensor::TensorData::new(v, [n, 2]), &Default::default());
        let counts = all_gather_counts::<Flex, _>(&c, n, &Default::default());
        assert_eq!(counts, vec![2, 0, 1]);
        all_gather_rows(&c, local, &counts).into_data().to_vec::<f32>().unwrap()
    });
    for r in rows {
        assert_eq!(r, vec![0.0, 1.0, 2.0, 3.0, 20.0, 21.0]);
    }
}
