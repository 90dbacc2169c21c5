//! Gradient checkpointing per decoder layer (`--gradient-checkpointing`, as transformers'
//! `gradient_checkpointing_enable()` does for Llama, Mistral and Qwen2): the forward pass keeps only
//! each decoder layer's input and builds no autodiff graph inside the layers; the backward pass
//! recomputes one layer at a time, with its graph, and back-propagates through it, last layer first.
//! (Burn's own op-level recomputation, `--op-checkpointing`, is a different mechanism chosen when
//! the backend is built; see `llmql_backends`.)
//!
//! Memory: the inputs of the `L` layers (`[b, s, hidden]` each, in the compute dtype) plus one
//! layer's graph at a time, instead of every layer's intermediate tensors. Cost: one more forward.
//!
//! Use, around one backward pass:
//! ```ignore
//! let gc = GradCheckpoint::<B>::start(true, seed);
//! let loss = /* a forward pass given gc.layers(), e.g. encoder::embed_run(&model, gc.layers(), ..) */;
//! let grads = gc.backward(loss, &model);                 // instead of loss.backward()
//! ```
//! The model knows nothing of this: every forward pass that should be checkpointed is handed the
//! runner ([`GradCheckpoint::layers`], a [`LayerRunner`]) explicitly. A layer hook, if any, sees
//! values without a graph. Randomness (LoRA dropout) is re-seeded before each layer, in the forward
//! and in the recomputation alike, so both draw the same masks; the re-seeding holds a process-wide
//! lock because Burn's RNG is global to a backend. Without dropout nothing is re-seeded.
use crate::model::{DecoderModel, LayerContext, LayerRunner, PlainLayers};
use crate::train::common::mix;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use std::cell::RefCell;
use std::sync::Mutex;

/// Burn's RNG is one per backend (not per thread): seeding and the draws that follow must not
/// interleave with another peer's.
static RNG: Mutex<()> = Mutex::new(());

/// One `forward_layers` call: what its backward needs.
struct Tape<B: AutodiffBackend> {
    /// The input of layer 0 with its graph (token embeddings, casts).
    input: Tensor<B, 3>,
    /// Each layer's input, values only.
    saved: Vec<Tensor<B::InnerBackend, 3>>,
    /// The layers' shared inputs (RoPE tables, attention bias).
    ctx: LayerContext<B>,
    /// The last layer's output as handed on: a leaf, whose gradient starts the layers' backward.
    output: Tensor<B, 3>,
    /// Whether the layers drew random numbers (LoRA dropout), so the recomputation re-seeds too.
    random: bool,
}

struct State<B: AutodiffBackend> {
    seed: u64,
    /// `false`: the reference run ([`GradCheckpoint::reference`]): the same per-layer seeding,
    /// one whole graph, no recomputation.
    recompute: bool,
    /// `forward_layers` calls so far (each call's layers have their own seeds).
    calls: std::cell::Cell<usize>,
    tapes: RefCell<Vec<Tape<B>>>,
}

impl<B: AutodiffBackend> State<B> {
    /// Layer `layer` of call `call` under its own seed (forward and recomputation alike) when the
    /// layers draw random numbers (`random`: LoRA dropout); otherwise just `f()` — re-seeding is not
    /// free (Burn's fusion backends flush their queue for it), and with two peers on one device
    /// that flush has been seen to corrupt the other peer's gradients on wgpu.
    fn seeded<T>(&self, call: usize, layer: usize, device: &B::Device, random: bool, f: impl FnOnce() -> T) -> T {
        if !random {
            return f();
        }
        let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
        B::seed(device, mix(mix(self.seed, call as u64), layer as u64));
        f()
    }
}

impl<B: AutodiffBackend> LayerRunner<B> for State<B> {
    fn run(
        &self,
        model: &DecoderModel<B>,
        x: Tensor<B, 3>,
        ctx: &LayerContext<B>,
        hook: &mut dyn FnMut(usize, Tensor<B, 3>) -> Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let call = self.calls.get();
        self.calls.set(call + 1);
        let device = x.device();
        let random = crate::lora::has_dropout(model);
        if !self.recompute {
            let mut h = x;
            for (i, layer) in model.layers.iter().enumerate() {
                h = hook(i, h);
                h = self.seeded(call, i, &device, random, || layer.forward(h, ctx));
            }
            return h;
        }
        // Untracked values through untracked layer copies: nothing of the layers is kept.
        let mut h = Tensor::<B, 3>::from_inner(x.clone().inner());
        let mut saved = Vec::with_capacity(model.layers.len());
        for (i, layer) in model.layers.iter().enumerate() {
            h = hook(i, h);
            saved.push(h.clone().inner());
            let frozen = layer.clone().no_grad();
            h = self.seeded(call, i, &device, random, || frozen.forward(h, ctx));
        }
        let output = Tensor::<B, 3>::from_inner(h.inner()).require_grad();
        self.tapes.borrow_mut().push(Tape { input: x, saved, ctx: ctx.clone(), output: output.clone(), random });
        output
    }
}

/// Per-layer gradient checkpointing for one backward pass (see the module docs). Disabled, its
/// runner is [`PlainLayers`] and its backward a plain `loss.backward()`.
pub struct GradCheckpoint<B: AutodiffBackend> {
    state: Option<State<B>>,
}

impl<B: AutodiffBackend> GradCheckpoint<B> {
    /// Checkpointing when `enabled`; `seed` seeds the per-layer RNG.
    pub fn start(enabled: bool, seed: u64) -> Self {
        if !enabled {
            return Self { state: None };
        }
        Self::new(seed, true)
    }

    /// No checkpointing, but the same per-layer seeding as [`Self::start`]`(true, seed)`: the
    /// gradients checkpointing must reproduce, randomness (dropout) included. For tests.
    pub fn reference(seed: u64) -> Self {
        Self::new(seed, false)
    }

    fn new(seed: u64, recompute: bool) -> Self {
        let state = State { seed, recompute, calls: Default::default(), tapes: RefCell::new(Vec::new()) };
        Self { state: Some(state) }
    }

    /// The runner to hand every forward pass of this backward pass
    /// ([`DecoderModel::forward_layers_run`] and the functions built on it).
    pub fn layers(&self) -> &dyn LayerRunner<B> {
        match &self.state {
            Some(s) => s,
            None => &PlainLayers,
        }
    }

    /// The gradients of `loss` for `model`'s parameters (what
    /// `GradientsParams::from_grads(loss.backward(), model)` gives without checkpointing).
    pub fn backward(self, loss: Tensor<B, 1>, model: &DecoderModel<B>) -> GradientsParams {
        let Some(state) = self.state else {
            return GradientsParams::from_grads(loss.backward(), model);
        };
        if !state.recompute {
            return GradientsParams::from_grads(loss.backward(), model);
        }
        let tapes = state.tapes.take();
        let mut grads = loss.backward();
        let outputs: Vec<_> = tapes.iter().map(|t| t.output.grad_remove(&mut grads)).collect();
        let mut acc = GradientsAccumulator::<DecoderModel<B>>::new();
        acc.accumulate(model, GradientsParams::from_grads(grads, model));
        for (call, (tape, g)) in tapes.into_iter().zip(outputs).enumerate().rev() {
            // An output the loss does not depend on has no gradient.
            let Some(mut g) = g else { continue };
            let device = g.device();
            for (i, layer) in model.layers.iter().enumerate().rev() {
                let x = Tensor::<B, 3>::from_inner(tape.saved[i].clone()).require_grad();
                let y = state.seeded(call, i, &device, tape.random, || layer.forward(x.clone(), &tape.ctx));
                let mut grads = (y * Tensor::<B, 3>::from_inner(g)).sum().backward();
                g = x.grad_remove(&mut grads).expect("gradient of a layer's input");
                acc.accumulate(model, GradientsParams::from_grads(grads, layer));
            }
            // On into whatever produced the first layer's input (trainable token embeddings).
            let grads = (tape.input * Tensor::<B, 3>::from_inner(g)).sum().backward();
            acc.accumulate(model, GradientsParams::from_grads(grads, model));
        }
        acc.grads()
    }
}
