//! Data parallelism: P peers (one per device) each run a slice of the global batch; their gradients
//! are summed so that every peer applies the update of the whole batch.
//!
//! - [`Collective`]: the one primitive needed, an element-wise sum over peers (all-reduce). Burn's
//!   `burn::collective::all_reduce` (NCCL on CUDA) implements it on GPUs; [`ThreadCollective`] is a
//!   faithful in-process one (threads + barriers) for CPU runs and tests.
//! - [`sync_gradients`]: sums every parameter gradient over peers.
//! - [`all_gather_rows`]: all-gather built on all-reduce (each peer fills its slot of a zero-padded
//!   buffer), which Burn does not offer.
//! - [`infonce_data_parallel`]: InfoNCE with cross-device negatives (every peer's passages are
//!   negatives for every query, as Tevatron gathers them) and an exact backward: the loss over the
//!   gathered batch is differentiated with respect to the gathered embeddings, each peer takes its
//!   own rows of that gradient and back-propagates them through its encoder (the GradCache
//!   surrogate `sum(q * dL/dq) + sum(p * dL/dp)`), so the summed parameter gradients equal the
//!   single-device gradient of the whole batch.
//! - [`token_weighted`]: a per-token mean loss (QL) weighted so that the summed gradients equal the
//!   gradient of the whole batch's per-token mean.
use crate::infonce::infonce_loss;
use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use std::sync::{Arc, Barrier, Mutex};

/// An element-wise sum over the peers of one data-parallel group.
pub trait Collective {
    fn world_size(&self) -> usize;
    fn rank(&self) -> usize;
    /// The sum over peers of `t` (same shape on every peer), returned to every peer.
    fn all_reduce_sum<B: Backend, const D: usize>(&self, t: Tensor<B, D>) -> Tensor<B, D>;
}

/// A single process: the identity.
pub struct Single;

impl Collective for Single {
    fn world_size(&self) -> usize {
        1
    }
    fn rank(&self) -> usize {
        0
    }
    fn all_reduce_sum<B: Backend, const D: usize>(&self, t: Tensor<B, D>) -> Tensor<B, D> {
        t
    }
}

struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f32>>>,
}

/// In-process all-reduce between threads (one per peer): values go through host memory. Every peer
/// must make the same sequence of calls with the same shapes.
#[derive(Clone)]
pub struct ThreadCollective {
    rank: usize,
    world: usize,
    shared: Arc<Shared>,
}

impl ThreadCollective {
    /// One handle per peer, ranks `0..world`.
    pub fn group(world: usize) -> Vec<ThreadCollective> {
        let shared = Arc::new(Shared { barrier: Barrier::new(world), slots: Mutex::new(vec![Vec::new(); world]) });
        (0..world).map(|rank| ThreadCollective { rank, world, shared: shared.clone() }).collect()
    }
}

impl Collective for ThreadCollective {
    fn world_size(&self) -> usize {
        self.world
    }
    fn rank(&self) -> usize {
        self.rank
    }
    fn all_reduce_sum<B: Backend, const D: usize>(&self, t: Tensor<B, D>) -> Tensor<B, D> {
        let device = t.device();
        let dtype = t.dtype();
        let shape = t.shape();
        let local: Vec<f32> = t.into_data().convert::<f32>().to_vec().expect("f32");
        self.shared.slots.lock().unwrap()[self.rank] = local;
        self.shared.barrier.wait();
        // Sum in rank order on every peer, so every peer gets bit-identical values.
        let sum = {
            let slots = self.shared.slots.lock().unwrap();
            let mut sum = vec![0f32; slots[0].len()];
            for s in slots.iter() {
                assert_eq!(s.len(), sum.len(), "all_reduce: peers passed different shapes");
                for (a, b) in sum.iter_mut().zip(s) {
                    *a += b;
                }
            }
            sum
        };
        self.shared.barrier.wait();
        Tensor::from_data(TensorData::new(sum, shape), (&device, dtype))
    }
}

/// Sums the gradient of every trainable parameter over the peers, in the module's parameter
/// order (a peer without a gradient for one contributes zeros, so every peer makes the same
/// calls). Frozen parameters (no `require_grad`) are left alone. Every peer calls it at the same point.
pub fn sync_gradients<B: AutodiffBackend, M: AutodiffModule<B>, C: Collective>(c: &C, model: &M, grads: GradientsParams) -> GradientsParams {
    if c.world_size() == 1 {
        return grads;
    }
    struct Sync<'a, C> {
        c: &'a C,
        grads: GradientsParams,
    }
    impl<B: AutodiffBackend, C: Collective> ModuleVisitor<B> for Sync<'_, C> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let value = param.val();
            if !value.is_require_grad() {
                return;
            }
            let local = self
                .grads
                .remove::<B::InnerBackend, D>(param.id)
                .unwrap_or_else(|| Tensor::<B::InnerBackend, D>::zeros(value.shape(), (&value.device(), value.dtype())));
            self.grads.register::<B::InnerBackend, D>(param.id, self.c.all_reduce_sum(local));
        }
    }
    let mut v = Sync { c, grads };
    model.visit(&mut v);
    v.grads
}

/// The element-wise sum over peers of a few host values (counts, loss sums), through `device`.
pub fn all_reduce_values<B: Backend, C: Collective>(c: &C, values: Vec<f32>, device: &B::Device) -> Vec<f32> {
    let n = values.len();
    let t = c.all_reduce_sum(Tensor::<B, 1>::from_data(TensorData::new(values, [n]), device));
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32")
}

/// Every peer's row count, in rank order.
pub fn all_gather_counts<B: Backend, C: Collective>(c: &C, n: usize, device: &B::Device) -> Vec<usize> {
    let mut v = vec![0f32; c.world_size()];
    v[c.rank()] = n as f32;
    all_reduce_values::<B, C>(c, v, device).into_iter().map(|x| x as usize).collect()
}

/// This peer's contiguous share of `n` items split over the peers as evenly as possible (the
/// last shares may be shorter or empty).
pub fn share<C: Collective>(c: &C, n: usize) -> std::ops::Range<usize> {
    let per = n.div_ceil(c.world_size().max(1));
    (c.rank() * per).min(n)..((c.rank() + 1) * per).min(n)
}

/// All-gather of row blocks built on all-reduce: every peer's `local` (`[n_rank, d]`, row counts
/// may differ) concatenated in rank order, on every peer. No gradient flows through it.
pub fn all_gather_rows<B: Backend, C: Collective>(c: &C, local: Tensor<B, 2>, counts: &[usize]) -> Tensor<B, 2> {
    if c.world_size() == 1 {
        return local;
    }
    let [n, d] = local.dims();
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let device = local.device();
    let dtype = local.dtype();
    let mut slots = Tensor::<B, 2>::zeros([c.world_size() * max, d], (&device, dtype));
    if n > 0 {
        let at = c.rank() * max;
        slots = slots.slice_assign([at..at + n, 0..d], local);
    }
    let summed = c.all_reduce_sum(slots);
    let parts: Vec<Tensor<B, 2>> = counts
        .iter()
        .enumerate()
        .filter(|(_, &k)| k > 0)
        .map(|(r, &k)| summed.clone().slice([r * max..r * max + k, 0..d]))
        .collect();
    Tensor::cat(parts, 0)
}

/// InfoNCE over the whole data-parallel batch (see the module docs). `q`: this peer's queries
/// `[n, d]`, `p`: its passages `[n * group, d]` (query i's group at rows `i*group..`), both with
/// their autodiff graphs. Returns the loss of the whole batch (the same on every peer) and this
/// peer's surrogate: `surrogate.backward()` gives this peer's share of the gradient, and
/// [`sync_gradients`] sums the shares into the whole batch's gradient.
pub fn infonce_data_parallel<B: AutodiffBackend, C: Collective>(
    c: &C,
    q: Tensor<B, 2>,
    p: Tensor<B, 2>,
    group: usize,
    temperature: f64,
) -> (f64, Tensor<B, 1>) {
    use burn::tensor::ElementConversion;
    let device = q.device();
    let n = q.dims()[0];
    let counts = all_gather_counts::<B::InnerBackend, C>(c, n, &device);
    let offset: usize = counts[..c.rank()].iter().sum();
    let p_counts: Vec<usize> = counts.iter().map(|k| k * group).collect();
    let q_all = all_gather_rows(c, q.clone().inner(), &counts);
    let p_all = all_gather_rows(c, p.clone().inner(), &p_counts);
    // The loss over every peer's queries and passages, differentiated w.r.t. the gathered leaves.
    let q_leaf = Tensor::<B, 2>::from_inner(q_all).require_grad();
    let p_leaf = Tensor::<B, 2>::from_inner(p_all).require_grad();
    let loss = infonce_loss(q_leaf.clone(), p_leaf.clone(), group, temperature);
    let value: f64 = loss.clone().into_scalar().elem::<f64>();
    let grads = loss.backward();
    let dq = q_leaf.grad(&grads).expect("query gradient");
    let dp = p_leaf.grad(&grads).expect("passage gradient");
    let d = dq.dims()[1];
    // This peer's rows of dL/dq and dL/dp, pushed through its own encoder.
    let dq = Tensor::<B, 2>::from_inner(dq.slice([offset..offset + n, 0..d]));
    let dp = Tensor::<B, 2>::from_inner(dp.slice([offset * group..(offset + n) * group, 0..d]));
    let surrogate = (q * dq).sum() + (p * dp).sum();
    (value, surrogate)
}

/// Weights a per-token mean loss computed on this peer's `local_tokens` so that the gradients summed
/// over peers equal those of the per-token mean over the whole batch: `loss * local / global`.
/// Returns the weighted loss and the global token count.
pub fn token_weighted<B: Backend, C: Collective>(c: &C, loss: Tensor<B, 1>, local_tokens: usize) -> (Tensor<B, 1>, usize) {
    let counts = all_gather_counts::<B, C>(c, local_tokens, &loss.device());
    let global: usize = counts.iter().sum();
    (loss * (local_tokens as f64 / global.max(1) as f64), global)
}

/// Makes every peer's trainable parameters equal to rank 0's (a broadcast built on all-reduce:
/// rank 0 contributes its values, the others zeros). Call it once after the model is built (and
/// after a resume): random initialisation (e.g. LoRA's A) need not agree across devices.
pub fn broadcast_trainable<B: AutodiffBackend, M: AutodiffModule<B>, C: Collective>(c: &C, model: M) -> M {
    if c.world_size() == 1 {
        return model;
    }
    struct Bcast<'a, C> {
        c: &'a C,
    }
    impl<B: AutodiffBackend, C: Collective> burn::module::ModuleMapper<B> for Bcast<'_, C> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            if !tensor.is_require_grad() {
                return Param::from_mapped_value(id, tensor, mapper);
            }
            let inner = tensor.inner();
            let mine = if self.c.rank() == 0 { inner } else { inner.zeros_like() };
            let value = Tensor::<B, D>::from_inner(self.c.all_reduce_sum(mine)).require_grad();
            Param::from_mapped_value(id, value, mapper)
        }
    }
    model.map(&mut Bcast { c })
}
