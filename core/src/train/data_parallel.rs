//! Data parallelism: P peers (one per device) each run a slice of the global batch; their gradients
//! are summed so that every peer applies the update of the whole batch.
//!
//! - [`Collective`]: the one primitive needed, an element-wise sum over peers (all-reduce).
//!   [`BurnCollective`] implements it with Burn's `burn::collective::all_reduce` on any backend
//!   (peers are threads of one process, one per device; several nodes join through Burn's
//!   orchestrator); [`Single`] is the one-device identity.
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
#[cfg(feature = "collective")]
use std::sync::{Arc, Mutex};

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

/// Burn's collective all-reduce (`burn::collective`): peers are threads of one process, one per
/// device, each holding one of these (rank = Burn's `PeerId`); in a multi-node run
/// ([`CollectiveOptions::nodes`]) the nodes' processes join through Burn's global orchestrator.
/// A backend is registered with Burn on its first all-reduce (every peer reaches that point
/// together, as every peer makes the same calls) and unregistered when the handle drops.
#[cfg(feature = "collective")]
pub struct BurnCollective {
    rank: usize,
    world: usize,
    config: burn::collective::CollectiveConfig,
    // Per backend type registered so far: how to unregister it.
    registered: Mutex<Vec<(std::any::TypeId, Finish)>>,
    group: Arc<GroupToken>,
}

/// Leaves Burn's collective for one backend type.
#[cfg(feature = "collective")]
type Finish = Box<dyn Fn() + Send>;

/// Burn's local collective server is one per process and backend type, so only one group of
/// peers may use it at a time: a group holds this token until its last peer has finished. It also
/// knows how to reset the servers its peers use ([`GroupAbort`]).
#[cfg(feature = "collective")]
struct GroupToken {
    /// The number of local peers.
    local: usize,
    resets: Mutex<Vec<(std::any::TypeId, Finish)>>,
    aborted: std::sync::atomic::AtomicBool,
    /// Per backend type, how many local peers have reached its registration (Burn's `register`
    /// blocks until all have, and cannot be interrupted: peers enter it only together).
    arrived: Mutex<Vec<(std::any::TypeId, usize)>>,
    arrival: std::sync::Condvar,
}

/// Stops a data-parallel group whose peer has failed: Burn's collective servers are reset, so the
/// other peers' pending and next all-reduces fail (they panic, naming the cause) instead of waiting
/// forever for the missing peer.
#[cfg(feature = "collective")]
#[derive(Clone)]
pub struct GroupAbort(Arc<GroupToken>);

#[cfg(feature = "collective")]
impl GroupAbort {
    pub fn abort(&self) {
        if self.0.aborted.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        {
            let _g = self.0.arrived.lock().unwrap_or_else(|e| e.into_inner());
            self.0.arrival.notify_all();
        }
        for (_, reset) in self.0.resets.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            reset();
        }
    }
}

#[cfg(feature = "collective")]
static GROUP_BUSY: (Mutex<bool>, std::sync::Condvar) = (Mutex::new(false), std::sync::Condvar::new());

#[cfg(feature = "collective")]
impl Drop for GroupToken {
    fn drop(&mut self) {
        *GROUP_BUSY.0.lock().unwrap_or_else(|e| e.into_inner()) = false;
        GROUP_BUSY.1.notify_all();
    }
}

/// A multi-node run: this process is node `node_rank` of `nodes`, every node runs the same number
/// of local devices, and the nodes meet at Burn's global orchestrator (`llmql orchestrator`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiNode {
    pub nodes: usize,
    pub node_rank: usize,
    /// The orchestrator, e.g. `ws://10.0.0.1:3000`.
    pub orchestrator: String,
    /// This node's address as the other nodes reach it, e.g. `ws://10.0.0.2:3001`.
    pub node_address: String,
    /// The port this node serves tensors on (the port of `node_address`).
    pub data_service_port: u16,
}

#[cfg(feature = "collective")]
impl BurnCollective {
    /// One handle per local device (global ranks `node_rank * local .. (node_rank + 1) * local`).
    /// Waits while another group of this process is still running.
    pub fn group(local: usize, multi_node: Option<&MultiNode>) -> Vec<BurnCollective> {
        use burn::collective::{AllReduceStrategy, CollectiveConfig};
        {
            let mut busy = GROUP_BUSY.0.lock().unwrap_or_else(|e| e.into_inner());
            while *busy {
                busy = GROUP_BUSY.1.wait(busy).unwrap_or_else(|e| e.into_inner());
            }
            *busy = true;
        }
        let token = Arc::new(GroupToken {
            local,
            resets: Mutex::new(Vec::new()),
            aborted: Default::default(),
            arrived: Mutex::new(Vec::new()),
            arrival: Default::default(),
        });
        // Sum in one place and copy the result out (exact and identical on every peer).
        let mut config = CollectiveConfig::default()
            .with_num_devices(local)
            .with_local_all_reduce_strategy(AllReduceStrategy::Centralized);
        let (nodes, node_rank) = match multi_node {
            Some(m) => {
                config = config
                    .with_num_nodes(m.nodes as u32)
                    .with_global_address(parse_address(&m.orchestrator))
                    .with_node_address(parse_address(&m.node_address))
                    .with_data_service_port(m.data_service_port);
                (m.nodes, m.node_rank)
            }
            None => (1, 0),
        };
        (0..local)
            .map(|i| BurnCollective {
                rank: node_rank * local + i,
                world: nodes * local,
                config: config.clone(),
                registered: Mutex::new(Vec::new()),
                group: token.clone(),
            })
            .collect()
    }

    /// A handle that stops the whole group (see [`GroupAbort`]).
    pub fn aborter(&self) -> GroupAbort {
        GroupAbort(self.group.clone())
    }

    fn aborted(&self) -> bool {
        self.group.aborted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn ensure_registered<B: Backend>(&self, device: &B::Device) {
        let id = std::any::TypeId::of::<B>();
        let mut reg = self.registered.lock().unwrap();
        if reg.iter().any(|(t, _)| *t == id) {
            return;
        }
        let peer = burn::collective::PeerId::from(self.rank);
        {
            let mut resets = self.group.resets.lock().unwrap_or_else(|e| e.into_inner());
            if !resets.iter().any(|(t, _)| *t == id) {
                resets.push((id, Box::new(burn::collective::reset_collective::<B>)));
            }
        }
        {
            let mut arrived = self.group.arrived.lock().unwrap_or_else(|e| e.into_inner());
            match arrived.iter_mut().find(|(t, _)| *t == id) {
                Some((_, n)) => *n += 1,
                None => arrived.push((id, 1)),
            }
            self.group.arrival.notify_all();
            while !self.aborted() && arrived.iter().find(|(t, _)| *t == id).map_or(0, |(_, n)| *n) < self.group.local {
                arrived = self.group.arrival.wait(arrived).unwrap_or_else(|e| e.into_inner());
            }
        }
        if self.aborted() {
            panic!("peer {}: another peer of the data-parallel group failed", self.rank);
        }
        burn::collective::register::<B>(peer, device.clone(), self.config.clone())
            .unwrap_or_else(|e| panic!("peer {} could not join Burn's collective: {e:?}", self.rank));
        reg.push((
            id,
            Box::new(move || {
                if let Err(e) = burn::collective::finish_collective::<B>(peer) {
                    tracing::warn!("peer {peer} leaving Burn's collective: {e:?}");
                }
            }),
        ));
    }
}

#[cfg(feature = "collective")]
fn parse_address(s: &str) -> burn_communication::Address {
    s.parse().unwrap_or_else(|e: String| panic!("invalid address {s:?}: {e}"))
}

#[cfg(feature = "collective")]
impl Drop for BurnCollective {
    fn drop(&mut self) {
        let aborted = self.aborted();
        for (_, finish) in self.registered.get_mut().unwrap_or_else(|e| e.into_inner()).drain(..) {
            if !aborted {
                finish();
            }
        }
    }
}

#[cfg(feature = "collective")]
impl Collective for BurnCollective {
    fn world_size(&self) -> usize {
        self.world
    }
    fn rank(&self) -> usize {
        self.rank
    }
    fn all_reduce_sum<B: Backend, const D: usize>(&self, t: Tensor<B, D>) -> Tensor<B, D> {
        use burn::tensor::TensorPrimitive;
        if self.world == 1 {
            return t;
        }
        self.ensure_registered::<B>(&t.device());
        let out = burn::collective::all_reduce::<B>(
            self.rank.into(),
            t.into_primitive().tensor(),
            burn::collective::ReduceOperation::Sum,
        )
        .unwrap_or_else(|e| {
            if self.aborted() {
                panic!("peer {}: another peer of the data-parallel group failed", self.rank)
            }
            panic!("all-reduce on peer {} failed: {e:?}", self.rank)
        });
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }
}

/// Gradients are all-reduced in buckets of at most this many elements (64 MiB of f32), as
/// PyTorch's DDP buckets them: a few large all-reduces instead of one per parameter.
pub const BUCKET_ELEMENTS: usize = 1 << 24;

/// Sums the gradient of every trainable parameter over the peers, in the module's parameter
/// order (a peer without a gradient for one contributes zeros, so every peer makes the same
/// calls), flattened into buckets of up to [`BUCKET_ELEMENTS`] of one dtype. Frozen parameters (no
/// `require_grad`) are left alone. Every peer calls it at the same point.
pub fn sync_gradients<B: AutodiffBackend, M: AutodiffModule<B>, C: Collective>(
    c: &C,
    model: &M,
    grads: GradientsParams,
) -> GradientsParams {
    sync_gradients_in_buckets(c, model, grads, BUCKET_ELEMENTS)
}

/// [`sync_gradients`] with buckets of at most `bucket_elements` (a parameter larger than that gets
/// a bucket of its own).
pub fn sync_gradients_in_buckets<B: AutodiffBackend, M: AutodiffModule<B>, C: Collective>(
    c: &C,
    model: &M,
    grads: GradientsParams,
    bucket_elements: usize,
) -> GradientsParams {
    if c.world_size() == 1 {
        return grads;
    }
    // Pass 1: every trainable parameter's gradient, flattened, in module order.
    struct Take<B: AutodiffBackend> {
        grads: GradientsParams,
        flat: Vec<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Take<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let value = param.val();
            if !value.is_require_grad() {
                return;
            }
            let g = self.grads.remove::<B::InnerBackend, D>(param.id).unwrap_or_else(|| {
                Tensor::<B::InnerBackend, D>::zeros(value.shape(), (&value.device(), value.dtype()))
            });
            let n = g.shape().num_elements();
            self.flat.push(g.reshape([n]));
        }
    }
    let mut take = Take::<B> { grads, flat: Vec::new() };
    model.visit(&mut take);
    // Sum bucket by bucket; pieces come back in the same order.
    let mut summed: Vec<Tensor<B::InnerBackend, 1>> = Vec::with_capacity(take.flat.len());
    let mut bucket: Vec<Tensor<B::InnerBackend, 1>> = Vec::new();
    let mut filled = 0usize;
    let flush = |bucket: &mut Vec<Tensor<B::InnerBackend, 1>>, summed: &mut Vec<Tensor<B::InnerBackend, 1>>| {
        if bucket.is_empty() {
            return;
        }
        let sizes: Vec<usize> = bucket.iter().map(|t| t.dims()[0]).collect();
        let all = c.all_reduce_sum(Tensor::cat(std::mem::take(bucket), 0));
        let mut at = 0;
        for n in sizes {
            summed.push(all.clone().slice(at..at + n));
            at += n;
        }
    };
    for g in std::mem::take(&mut take.flat) {
        let n = g.dims()[0];
        if !bucket.is_empty() && (filled + n > bucket_elements || bucket[0].dtype() != g.dtype()) {
            flush(&mut bucket, &mut summed);
            filled = 0;
        }
        filled += n;
        bucket.push(g);
    }
    flush(&mut bucket, &mut summed);
    // Pass 2: back into the parameters' shapes.
    struct Put<B: AutodiffBackend> {
        grads: GradientsParams,
        summed: std::vec::IntoIter<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Put<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let value = param.val();
            if !value.is_require_grad() {
                return;
            }
            let g = self.summed.next().expect("one summed gradient per trainable parameter");
            self.grads.register::<B::InnerBackend, D>(param.id, g.reshape(value.shape()));
        }
    }
    let mut put = Put::<B> { grads: take.grads, summed: summed.into_iter() };
    model.visit(&mut put);
    put.grads
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
pub fn token_weighted<B: Backend, C: Collective>(
    c: &C,
    loss: Tensor<B, 1>,
    local_tokens: usize,
) -> (Tensor<B, 1>, usize) {
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
