//! Fused kernels for Burn's CPU backend (flex), forward and backward, behind backend-generic
//! functions: on `Flex` and `Autodiff<Flex>` (f32, contiguous inputs) they run one multi-threaded
//! pass with a vectorisable `exp`; on every other backend, dtype or layout they are exactly the
//! generic Burn expressions they stand for.
//!
//! Why: flex runs element-wise operations on one thread with a scalar `expf`, and Burn's autodiff
//! decomposes softmax and SiLU into several such operations, each with its own backward: in a
//! training step those passes, not the matmuls, were most of the wall time on 2 cores.
//!
//! - [`swiglu`]: `silu(gate) * up` (the MLP's activation), inference and training;
//! - [`softmax_rows`]: softmax over the last dimension of a `[rows, n]` tensor, inference and
//!   training (flex's own softmax calls libm's `expf`, whose underflow path for masked scores is slow);
//! - [`rms_norm`]: `x / sqrt(mean(x^2) + eps) * w` over the last dimension, inference and training;
//! - [`dropout_mask`]: LoRA's dropout masks;
//! - [`matmul`]: a 2-D GEMM (the linear layers), forward and backward, written straight into its
//!   output (flex's matmul allocates each output twice and copies it on the calling thread);
//! - [`tied_logits`]: logits through tied embeddings, with a contiguous embedding gradient;
//! - [`sum_squares`], [`scale`]: a gradient's squared norm and its scaling (global-norm clipping);
//! - [`target_log_probs`]: log-softmax over the vocabulary and the target's entry (the QL loss and
//!   QL scores), inference and training.
use super::cpu_kernels_generic as plain;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;
use std::any::{Any, TypeId};

use burn::backend::flex::FlexTensor;

/// `tensor` as a `Tensor<T, D>` when `B` is `T`.
fn cast<B: Backend, T: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Tensor<T, D>, Tensor<B, D>> {
    if TypeId::of::<B>() != TypeId::of::<T>() {
        return Err(tensor);
    }
    let boxed: Box<dyn Any> = Box::new(tensor);
    Ok(*boxed.downcast::<Tensor<T, D>>().expect("same type"))
}

/// `exp(x)` for f32 (Cephes' range reduction and polynomial, ~1 ulp), written so the compiler
/// vectorises it (no libm call: rounding by the 1.5 * 2^23 trick); 0 below -87.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    let xc = x.clamp(-87.0, 88.0);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scaled = y * f32::from_bits(((n as i32 + 127) << 23) as u32);
    if x < -87.0 {
        0.0
    } else {
        scaled
    }
}

/// Lanes of the explicit partial sums/maxima below (one AVX-512 register of f32).
const LANES: usize = 16;

#[inline(always)]
fn row_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    acc.iter().fold(tail, |m, &v| m.max(v))
}

#[inline(always)]
fn row_sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn row_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `f(args)` compiled for the best instruction set the CPU has (AVX-512, AVX2 + FMA, baseline):
/// the crate is built for baseline x86-64, where these loops would run 4 lanes wide.
macro_rules! dispatch {
    ($name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        #[inline(always)]
        fn body($($arg: $ty),*) $(-> $ret)? $body
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { avx512($($arg),*) };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                return unsafe { avx2($($arg),*) };
            }
        }
        #[allow(clippy::needless_return)]
        return body($($arg),*);
    };
}

fn swiglu_fwd_rows(o: &mut [f32], g: &[f32], u: &[f32]) {
    dispatch!(swiglu_fwd_rows(o: &mut [f32], g: &[f32], u: &[f32]) {
        for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
            *o = g / (1.0 + exp(-g)) * u;
        }
    });
}

fn swiglu_bwd_rows(dg: &mut [f32], du: &mut [f32], g: &[f32], u: &[f32], dy: &[f32]) {
    dispatch!(swiglu_bwd_rows(dg: &mut [f32], du: &mut [f32], g: &[f32], u: &[f32], dy: &[f32]) {
        for i in 0..dg.len() {
            let s = 1.0 / (1.0 + exp(-g[i]));
            dg[i] = dy[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
            du[i] = dy[i] * g[i] * s;
        }
    });
}

fn softmax_fwd_rows(o: &mut [f32], x: &[f32], cols: usize) {
    dispatch!(softmax_fwd_rows(o: &mut [f32], x: &[f32], cols: usize) {
        for (o, x) in o.chunks_mut(cols).zip(x.chunks(cols)) {
            let max = row_max(x);
            for (o, &v) in o.iter_mut().zip(x) {
                *o = exp(v - max);
            }
            let inv = 1.0 / row_sum(o);
            for o in o.iter_mut() {
                *o *= inv;
            }
        }
    });
}

fn softmax_bwd_rows(dx: &mut [f32], p: &[f32], dy: &[f32], cols: usize) {
    dispatch!(softmax_bwd_rows(dx: &mut [f32], p: &[f32], dy: &[f32], cols: usize) {
        for ((dx, p), dy) in dx.chunks_mut(cols).zip(p.chunks(cols)).zip(dy.chunks(cols)) {
            let dot = row_dot(p, dy);
            for ((d, &p), &g) in dx.iter_mut().zip(p).zip(dy) {
                *d = p * (g - dot);
            }
        }
    });
}

/// Rows per parallel task.
fn chunk_rows(n: usize) -> usize {
    (16_384 / n.max(1)).max(1)
}

/// The f32 values of a contiguous flex tensor, or `None` (another dtype or layout).
fn f32_slice(t: &FlexTensor) -> Option<&[f32]> {
    if t.dtype() != DType::F32 || !t.is_contiguous() || t.layout().start_offset() != 0 {
        return None;
    }
    let n = t.layout().shape().num_elements();
    t.storage::<f32>().get(..n)
}

fn flex_from(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    let shape = like.layout().shape().clone();
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> B::FloatTensorPrimitive {
    t.into_primitive().tensor()
}

// ---------------------------------------------------------------------------------------------
// SwiGLU

/// `silu(gate) * up` (same shapes).
pub fn swiglu<B: Backend, const D: usize>(gate: Tensor<B, D>, up: Tensor<B, D>) -> Tensor<B, D> {
    if let (Ok(g), Ok(u)) = (cast::<B, Flex, D>(gate.clone()), cast::<B, Flex, D>(up.clone())) {
        if let Some(out) = swiglu_flex(float(g), float(u)) {
            return cast::<Flex, B, D>(Tensor::from_primitive(TensorPrimitive::Float(out))).expect("B is Flex");
        }
    }
    if let Some(out) = swiglu_ad::<B, NoCheckpointing, D>(&gate, &up) {
        return out;
    }
    if let Some(out) = swiglu_ad::<B, BalancedCheckpointing, D>(&gate, &up) {
        return out;
    }
    plain::swiglu(gate, up)
}

fn swiglu_forward(g: &[f32], u: &[f32], cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; g.len()];
    let step = chunk_rows(cols) * cols;
    out.par_chunks_mut(step)
        .zip(g.par_chunks(step).zip(u.par_chunks(step)))
        .for_each(|(o, (g, u))| swiglu_fwd_rows(o, g, u));
    out
}

fn swiglu_flex(g: FlexTensor, u: FlexTensor) -> Option<FlexTensor> {
    let (gs, us) = (f32_slice(&g)?, f32_slice(&u)?);
    if g.layout().shape() != u.layout().shape() {
        return None;
    }
    let cols = *g.layout().shape().as_slice().last()?;
    Some(flex_from(swiglu_forward(gs, us, cols), &g))
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Flex, 2> for SwigluBackward {
    /// The inputs' values.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (g, u) = ops.state;
        let [pg, pu] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (gs, us, dy) = (f32_slice(&g).expect("f32"), f32_slice(&u).expect("f32"), f32_slice(&grad).expect("f32"));
        let cols = *g.layout().shape().as_slice().last().expect("rank >= 1");
        let step = chunk_rows(cols) * cols;
        let mut dg = vec![0f32; gs.len()];
        let mut du = vec![0f32; gs.len()];
        dg.par_chunks_mut(step).zip(du.par_chunks_mut(step)).enumerate().for_each(|(c, (dgc, duc))| {
            let range = c * step..c * step + dgc.len();
            swiglu_bwd_rows(dgc, duc, &gs[range.clone()], &us[range.clone()], &dy[range]);
        });
        if let Some(node) = pg {
            grads.register::<Flex>(node.id, flex_from(dg, &g));
        }
        if let Some(node) = pu {
            grads.register::<Flex>(node.id, flex_from(du, &g));
        }
    }
}

/// The autodiff form, when `B` is `Autodiff<Flex, C>` (and the inputs f32, contiguous).
fn swiglu_ad<B: Backend, C: CheckpointStrategy, const D: usize>(
    gate: &Tensor<B, D>,
    up: &Tensor<B, D>,
) -> Option<Tensor<B, D>> {
    let g = float(cast::<B, Autodiff<Flex, C>, D>(gate.clone()).ok()?);
    let u = float(cast::<B, Autodiff<Flex, C>, D>(up.clone()).ok()?);
    let out = swiglu_flex(g.primitive.clone(), u.primitive.clone())?;
    let out = match SwigluBackward.prepare::<C>([g.node.clone(), u.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((g.primitive, u.primitive), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    cast::<Autodiff<Flex, C>, B, D>(Tensor::from_primitive(TensorPrimitive::Float(out))).ok()
}

// ---------------------------------------------------------------------------------------------
// Softmax over rows

/// Softmax over the last dimension of `x` `[rows, n]`.
pub fn softmax_rows<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let x = match cast::<B, Flex, 2>(x) {
        Ok(xf) => {
            let xp = float(xf);
            let cols = *xp.layout().shape().as_slice().last().expect("rank 2");
            let out = match f32_slice(&xp) {
                Some(values) => flex_from(softmax_forward(values, cols), &xp),
                None => float(softmax(Tensor::<Flex, 2>::from_primitive(TensorPrimitive::Float(xp)), 1)),
            };
            return cast::<Flex, B, 2>(Tensor::from_primitive(TensorPrimitive::Float(out))).expect("B is Flex");
        }
        Err(x) => x,
    };
    let x = match softmax_ad::<B, NoCheckpointing>(x) {
        Ok(out) => return out,
        Err(x) => x,
    };
    let x = match softmax_ad::<B, BalancedCheckpointing>(x) {
        Ok(out) => return out,
        Err(x) => x,
    };
    plain::softmax_rows(x)
}

fn softmax_forward(x: &[f32], cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    let step = chunk_rows(cols) * cols;
    out.par_chunks_mut(step).zip(x.par_chunks(step)).for_each(|(o, x)| softmax_fwd_rows(o, x, cols));
    out
}

#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    /// The output (the probabilities).
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let p = ops.state;
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Some(node) = parent else { return };
        let (ps, dy) = (f32_slice(&p).expect("f32"), f32_slice(&grad).expect("f32"));
        let cols = *p.layout().shape().as_slice().last().expect("rank 2");
        let step = chunk_rows(cols) * cols;
        let mut dx = vec![0f32; ps.len()];
        dx.par_chunks_mut(step)
            .zip(ps.par_chunks(step).zip(dy.par_chunks(step)))
            .for_each(|(dx, (p, dy))| softmax_bwd_rows(dx, p, dy, cols));
        grads.register::<Flex>(node.id, flex_from(dx, &p));
    }
}

fn softmax_ad<B: Backend, C: CheckpointStrategy>(x: Tensor<B, 2>) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let x = cast::<B, Autodiff<Flex, C>, 2>(x)?;
    let xp = float(x.clone());
    let cols = x.dims()[1];
    let Some(values) = f32_slice(&xp.primitive) else {
        return Err(cast::<Autodiff<Flex, C>, B, 2>(x).expect("B"));
    };
    let out = flex_from(softmax_forward(values, cols), &xp.primitive);
    let out = match SoftmaxBackward.prepare::<C>([xp.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(out.clone(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Ok(cast::<Autodiff<Flex, C>, B, 2>(Tensor::from_primitive(TensorPrimitive::Float(out))).expect("B"))
}

// ---------------------------------------------------------------------------------------------
// Dropout masks

/// A dropout mask of `n` values (`scale` where kept, with probability `keep`, else 0), drawn from a
/// counter-based hash (splitmix64) of `seed` and the element's index: the same for the same seed,
/// whatever the threads. Used by [`crate::lora::dropout`].
pub fn dropout_mask(seed: u64, keep: f64, scale: f32, n: usize) -> Vec<f32> {
    let threshold = (keep * 4_294_967_296.0) as u64;
    let mut mask = vec![0f32; n];
    const CHUNK: usize = 1 << 14;
    mask.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| mask_rows(chunk, seed, (c * CHUNK) as u64, threshold, scale));
    mask
}

fn mask_rows(m: &mut [f32], seed: u64, base: u64, threshold: u64, scale: f32) {
    dispatch!(mask_rows(m: &mut [f32], seed: u64, base: u64, threshold: u64, scale: f32) {
        for (i, m) in m.iter_mut().enumerate() {
            let mut z = seed.wrapping_add((base + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            *m = if (z >> 32) < threshold { scale } else { 0.0 };
        }
    });
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

/// `x * 1/sqrt(mean(x^2, last dim) + eps) * w` (`w` over the last dimension), f32 throughout; `None`
/// where the fused kernel does not apply (then the caller computes it with Burn's operations).
pub fn rms_norm<B: Backend, const D: usize>(x: &Tensor<B, D>, w: &Tensor<B, 1>, eps: f64) -> Option<Tensor<B, D>> {
    if let (Ok(xf), Ok(wf)) = (cast::<B, Flex, D>(x.clone()), cast::<B, Flex, 1>(w.clone())) {
        let (xp, wp) = (float(xf), float(wf));
        let (y, _) = rms_forward(&xp, &wp, eps)?;
        return cast::<Flex, B, D>(Tensor::from_primitive(TensorPrimitive::Float(y))).ok();
    }
    if let Some(y) = rms_norm_ad::<B, NoCheckpointing, D>(x, w, eps) {
        return Some(y);
    }
    rms_norm_ad::<B, BalancedCheckpointing, D>(x, w, eps)
}

/// The output and each row's `1/rms`.
fn rms_forward(x: &FlexTensor, w: &FlexTensor, eps: f64) -> Option<(FlexTensor, Vec<f32>)> {
    let (xs, ws) = (f32_slice(x)?, f32_slice(w)?);
    let cols = *x.layout().shape().as_slice().last()?;
    if ws.len() != cols || cols == 0 {
        return None;
    }
    let rows = xs.len() / cols;
    let mut out = vec![0f32; xs.len()];
    let mut inv = vec![0f32; rows];
    let step = chunk_rows(cols);
    out.par_chunks_mut(step * cols)
        .zip(inv.par_chunks_mut(step))
        .zip(xs.par_chunks(step * cols))
        .for_each(|((o, r), x)| rms_fwd_rows(o, r, x, ws, eps as f32));
    Some((flex_from(out, x), inv))
}

fn rms_fwd_rows(o: &mut [f32], inv: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    dispatch!(rms_fwd_rows(o: &mut [f32], inv: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
        let cols = w.len();
        for ((o, x), r) in o.chunks_mut(cols).zip(x.chunks(cols)).zip(inv.iter_mut()) {
            *r = 1.0 / (row_dot(x, x) / cols as f32 + eps).sqrt();
            for ((o, &x), &w) in o.iter_mut().zip(x).zip(w) {
                *o = x * *r * w;
            }
        }
    });
}

fn rms_bwd_rows(dx: &mut [f32], dw: &mut [f32], x: &[f32], inv: &[f32], w: &[f32], dy: &[f32]) {
    dispatch!(rms_bwd_rows(dx: &mut [f32], dw: &mut [f32], x: &[f32], inv: &[f32], w: &[f32], dy: &[f32]) {
        let cols = w.len();
        for (((dx, x), dy), &r) in dx.chunks_mut(cols).zip(x.chunks(cols)).zip(dy.chunks(cols)).zip(inv) {
            // g = dy * w; dx = r * (g - x * r^2 * mean(g * x)); dw += dy * x * r
            let mut acc = [0f32; LANES];
            let (mut cx, mut cy, mut cw) = (x.chunks_exact(LANES), dy.chunks_exact(LANES), w.chunks_exact(LANES));
            for ((x, dy), w) in (&mut cx).zip(&mut cy).zip(&mut cw) {
                for i in 0..LANES {
                    acc[i] += dy[i] * w[i] * x[i];
                }
            }
            let tail: f32 = cx.remainder().iter().zip(cy.remainder()).zip(cw.remainder()).map(|((x, dy), w)| dy * w * x).sum();
            let mean = (acc.iter().sum::<f32>() + tail) / cols as f32;
            let k = r * r * mean;
            for i in 0..cols {
                dx[i] = r * (dy[i] * w[i] - x[i] * k);
            }
            if !dw.is_empty() {
                for i in 0..cols {
                    dw[i] += dy[i] * x[i] * r;
                }
            }
        }
    });
}

#[derive(Debug)]
struct RmsNormBackward;

impl Backward<Flex, 2> for RmsNormBackward {
    /// The input, the weight and each row's `1/rms`.
    type State = (FlexTensor, FlexTensor, std::sync::Arc<Vec<f32>>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w, inv) = ops.state;
        let [px, pw] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (xs, ws, dy) = (f32_slice(&x).expect("f32"), f32_slice(&w).expect("f32"), f32_slice(&grad).expect("f32"));
        let cols = ws.len();
        let step = chunk_rows(cols);
        let want_w = pw.is_some();
        let mut dx = vec![0f32; xs.len()];
        // Each task sums its rows' weight gradient; the partial sums are added at the end.
        let dws: Vec<Vec<f32>> = dx
            .par_chunks_mut(step * cols)
            .zip(xs.par_chunks(step * cols).zip(dy.par_chunks(step * cols)))
            .zip(inv.par_chunks(step))
            .map(|((dx, (x, dy)), inv)| {
                let mut dw = vec![0f32; if want_w { cols } else { 0 }];
                rms_bwd_rows(dx, &mut dw, x, inv, ws, dy);
                dw
            })
            .collect();
        if let Some(node) = px {
            grads.register::<Flex>(node.id, flex_from(dx, &x));
        }
        if let Some(node) = pw {
            let mut dw = vec![0f32; cols];
            for part in &dws {
                for (a, b) in dw.iter_mut().zip(part) {
                    *a += b;
                }
            }
            grads.register::<Flex>(node.id, flex_from(dw, &w));
        }
    }
}

fn rms_norm_ad<B: Backend, C: CheckpointStrategy, const D: usize>(
    x: &Tensor<B, D>,
    w: &Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, D>> {
    let xp = float(cast::<B, Autodiff<Flex, C>, D>(x.clone()).ok()?);
    let wp = float(cast::<B, Autodiff<Flex, C>, 1>(w.clone()).ok()?);
    let (y, inv) = rms_forward(&xp.primitive, &wp.primitive, eps)?;
    let y = match RmsNormBackward.prepare::<C>([xp.node.clone(), wp.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((xp.primitive, wp.primitive, std::sync::Arc::new(inv)), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    cast::<Autodiff<Flex, C>, B, D>(Tensor::from_primitive(TensorPrimitive::Float(y))).ok()
}

// ---------------------------------------------------------------------------------------------
// Log-probabilities of target tokens (log-softmax + gather, the language-model loss)

/// `log_softmax(logits, 1)[i, targets[i]]` for `logits` `[n, vocab]` and `targets` `[n]`: the
/// log-probability of each row's target token. The fused form never materialises the `[n, vocab]`
/// log-probabilities (forward) nor the softmax's intermediate passes (backward: `g * (onehot -
/// softmax)` in one pass over the saved logits).
pub fn target_log_probs<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    if let Ok(x) = cast::<B, Flex, 2>(logits.clone()) {
        if let Some((out, _)) = target_forward(&float(x), &targets) {
            return cast::<Flex, B, 1>(Tensor::from_primitive(TensorPrimitive::Float(out))).expect("B is Flex");
        }
    }
    if let Some(out) = target_ad::<B, NoCheckpointing>(&logits, &targets) {
        return out;
    }
    if let Some(out) = target_ad::<B, BalancedCheckpointing>(&logits, &targets) {
        return out;
    }
    plain::target_log_probs(logits, targets)
}

/// The targets as row indices, when every one is inside `0..vocab`.
fn target_indices<B: Backend>(targets: &Tensor<B, 1, Int>, vocab: usize) -> Option<Vec<usize>> {
    let data = targets.clone().into_data().convert::<i64>();
    data.as_slice::<i64>().ok()?.iter().map(|&t| usize::try_from(t).ok().filter(|&t| t < vocab)).collect()
}

/// The outputs `[n]` and each row's log-sum-exp, or `None` where the kernel does not apply.
fn target_forward<B: Backend>(x: &FlexTensor, targets: &Tensor<B, 1, Int>) -> Option<(FlexTensor, TargetState)> {
    let xs = f32_slice(x)?;
    let [n, vocab] = <[usize; 2]>::try_from(x.layout().shape().as_slice()).ok()?;
    let idx = target_indices(targets, vocab)?;
    if idx.len() != n || vocab == 0 {
        return None;
    }
    let mut lse = vec![0f32; n];
    lse.par_iter_mut().zip(xs.par_chunks(vocab)).for_each(|(l, row)| *l = log_sum_exp(row));
    let out: Vec<f32> = (0..n).map(|i| xs[i * vocab + idx[i]] - lse[i]).collect();
    let out = FlexTensor::from_data(TensorData::new(out, [n]));
    Some((out, TargetState { lse: std::sync::Arc::new(lse), idx: std::sync::Arc::new(idx) }))
}

fn log_sum_exp(row: &[f32]) -> f32 {
    dispatch!(log_sum_exp(row: &[f32]) -> f32 {
        let max = row_max(row);
        if !max.is_finite() {
            return max;
        }
        let mut acc = [0f32; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += exp(v - max);
            }
        }
        let tail: f32 = chunks.remainder().iter().map(|&v| exp(v - max)).sum();
        max + (acc.iter().sum::<f32>() + tail).ln()
    });
}

fn target_bwd_rows(dx: &mut [f32], x: &[f32], lse: &[f32], idx: &[usize], dy: &[f32], vocab: usize) {
    dispatch!(target_bwd_rows(dx: &mut [f32], x: &[f32], lse: &[f32], idx: &[usize], dy: &[f32], vocab: usize) {
        for ((((dx, x), &l), &t), &g) in dx.chunks_mut(vocab).zip(x.chunks(vocab)).zip(lse).zip(idx).zip(dy) {
            for (d, &v) in dx.iter_mut().zip(x) {
                *d = -g * exp(v - l);
            }
            dx[t] += g;
        }
    });
}

#[derive(Debug, Clone)]
struct TargetState {
    lse: std::sync::Arc<Vec<f32>>,
    idx: std::sync::Arc<Vec<usize>>,
}

#[derive(Debug)]
struct TargetBackward;

impl Backward<Flex, 1> for TargetBackward {
    /// The logits, each row's log-sum-exp and target index.
    type State = (FlexTensor, TargetState);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, st) = ops.state;
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Some(node) = parent else { return };
        let (xs, dy) = (f32_slice(&x).expect("f32"), f32_slice(&grad).expect("f32"));
        let vocab = *x.layout().shape().as_slice().last().expect("rank 2");
        let rows = chunk_rows(vocab).max(1);
        let mut dx = vec![0f32; xs.len()];
        dx.par_chunks_mut(rows * vocab).enumerate().for_each(|(c, dxc)| {
            let r = c * rows..c * rows + dxc.len() / vocab;
            let xr = &xs[r.start * vocab..r.end * vocab];
            target_bwd_rows(dxc, xr, &st.lse[r.clone()], &st.idx[r.clone()], &dy[r], vocab);
        });
        grads.register::<Flex>(node.id, flex_from(dx, &x));
    }
}

fn target_ad<B: Backend, C: CheckpointStrategy>(
    logits: &Tensor<B, 2>,
    targets: &Tensor<B, 1, Int>,
) -> Option<Tensor<B, 1>> {
    let x = float(cast::<B, Autodiff<Flex, C>, 2>(logits.clone()).ok()?);
    let (out, st) = target_forward(&x.primitive, targets)?;
    let out = match TargetBackward.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, st), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    cast::<Autodiff<Flex, C>, B, 1>(Tensor::from_primitive(TensorPrimitive::Float(out))).ok()
}

// ---------------------------------------------------------------------------------------------
// AdamW

pub use super::cpu_kernels_generic::{AdamWInputs, AdamWOutput, AdamWScalars};

/// One AdamW update (Burn's formula, operation for operation in f32: `m = m b1 + g (1 - b1)`,
/// `v = v b2 + g^2 (1 - b2)`, `p = p (1 - lr wd) - lr (m / c1) / (sqrt(v / c2) + eps)`) of
/// `param` with `grad` and the moments (zeros before the first step), in one multi-threaded pass
/// that updates uniquely owned buffers in place. Burn's `AdamW` makes ~14 passes, each allocating a
/// tensor the size of the parameter. `Err` gives the inputs back (another backend or dtype).
pub fn adamw_update<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
    k: &AdamWScalars,
) -> Result<AdamWOutput<B, D>, AdamWInputs<B, D>> {
    if TypeId::of::<B>() != TypeId::of::<Flex>() {
        return Err((param, grad, moments));
    }
    let flex = |t: Tensor<B, D>| float(cast::<B, Flex, D>(t).expect("B is Flex"));
    let back =
        |t: FlexTensor| cast::<Flex, B, D>(Tensor::from_primitive(TensorPrimitive::Float(t))).expect("B is Flex");
    let (p, g) = (flex(param), flex(grad));
    let (m, v) = match moments {
        Some((m, v)) => (Some(flex(m)), Some(flex(v))),
        None => (None, None),
    };
    let n = p.layout().shape().num_elements();
    let fits = |t: &FlexTensor| t.dtype() == DType::F32 && t.layout().shape().num_elements() == n;
    if !(fits(&p) && fits(&g) && m.as_ref().is_none_or(fits) && v.as_ref().is_none_or(fits)) {
        let moments = m.zip(v).map(|(m, v)| (back(m), back(v)));
        return Err((back(p), back(g), moments));
    }
    let g = if f32_slice(&g).is_some() { g } else { g.to_contiguous() };
    let shape = p.layout().shape().clone();
    let zeros = || FlexTensor::from_data(TensorData::new(vec![0f32; n], shape.clone()));
    let (mut p, mut m, mut v) = (owned(p), m.map(owned).unwrap_or_else(zeros), v.map(owned).unwrap_or_else(zeros));
    let gs = f32_slice(&g).expect("checked");
    let decay = k.lr * k.weight_decay as f64;
    let c = AdamWConstants {
        beta_1: k.beta_1,
        one_minus_beta_1: 1.0 - k.beta_1,
        beta_2: k.beta_2,
        one_minus_beta_2: 1.0 - k.beta_2,
        correction_1: 1f32 - k.beta_1.powi(k.time),
        correction_2: 1f32 - k.beta_2.powi(k.time),
        epsilon: k.epsilon,
        lr: k.lr as f32,
        keep: (decay != 0.0).then_some((1.0 - decay) as f32),
    };
    {
        let ps = &mut p.try_storage_mut::<f32>().expect("owned")[..n];
        let ms = &mut m.try_storage_mut::<f32>().expect("owned")[..n];
        let vs = &mut v.try_storage_mut::<f32>().expect("owned")[..n];
        const STEP: usize = 16_384;
        ps.par_chunks_mut(STEP)
            .zip(ms.par_chunks_mut(STEP))
            .zip(vs.par_chunks_mut(STEP))
            .zip(gs.par_chunks(STEP))
            .for_each(|(((p, m), v), g)| adamw_rows(p, m, v, g, &c));
    }
    Ok((back(p), back(m), back(v)))
}

/// `t` itself when its f32 buffer is uniquely owned, contiguous from offset 0; else a copy.
fn owned(mut t: FlexTensor) -> FlexTensor {
    let n = t.layout().shape().num_elements();
    if f32_slice(&t).is_some() && t.try_storage_mut::<f32>().is_some_and(|s| s.len() >= n) {
        return t;
    }
    let t = t.to_contiguous();
    let shape = t.layout().shape().clone();
    let values = match f32_slice(&t) {
        Some(s) => s.to_vec(),
        None => t.into_data().to_vec::<f32>().expect("f32"),
    };
    FlexTensor::from_data(TensorData::new(values, shape))
}

struct AdamWConstants {
    beta_1: f32,
    one_minus_beta_1: f32,
    beta_2: f32,
    one_minus_beta_2: f32,
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    lr: f32,
    /// `1 - lr * weight_decay`, when there is decay.
    keep: Option<f32>,
}

fn adamw_rows(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &AdamWConstants) {
    dispatch!(adamw_rows(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &AdamWConstants) {
        for i in 0..p.len() {
            let gi = g[i];
            let mi = m[i] * c.beta_1 + gi * c.one_minus_beta_1;
            let vi = v[i] * c.beta_2 + gi * gi * c.one_minus_beta_2;
            m[i] = mi;
            v[i] = vi;
            let delta = (mi / c.correction_1) / ((vi / c.correction_2).sqrt() + c.epsilon);
            let base = match c.keep {
                Some(keep) => p[i] * keep,
                None => p[i],
            };
            p[i] = base - delta * c.lr;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Sum of squares and scaling (gradient clipping)

/// `sum(t^2)` in f64 (f32 values summed in f64 per thread on flex; elsewhere Burn's
/// `powi_scalar(2).sum()` in f32).
pub fn sum_squares<B: Backend, const D: usize>(t: Tensor<B, D>) -> f64 {
    if let Ok(tf) = cast::<B, Flex, D>(t.clone()) {
        let tp = float(tf);
        if let Some(values) = f32_slice(&tp) {
            return values.par_chunks(1 << 16).map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()).sum();
        }
    }
    plain::sum_squares(t)
}

/// `t * factor` (in place and multi-threaded on flex when `t`'s buffer is its own).
pub fn scale<B: Backend, const D: usize>(t: Tensor<B, D>, factor: f64) -> Tensor<B, D> {
    if TypeId::of::<B>() == TypeId::of::<Flex>() {
        let tp = float(cast::<B, Flex, D>(t).expect("B is Flex"));
        let back = |t: FlexTensor| cast::<Flex, B, D>(Tensor::from_primitive(TensorPrimitive::Float(t))).expect("B");
        if tp.dtype() != DType::F32 {
            return back(tp) * factor;
        }
        let n = tp.layout().shape().num_elements();
        let mut tp = owned(tp);
        let f = factor as f32;
        tp.try_storage_mut::<f32>().expect("owned")[..n]
            .par_chunks_mut(1 << 16)
            .for_each(|c| c.iter_mut().for_each(|v| *v *= f));
        return back(tp);
    }
    plain::scale(t, factor)
}

// ---------------------------------------------------------------------------------------------
// 2-D matmul

/// `x` `[m, k]` times `w` `[k, n]` (any strides): the linear layers' GEMM. Flex's matmul allocates
/// every output as a zeroed byte vector and then copies it into an aligned buffer, on the calling
/// thread while the GEMM threads wait (a memset and a memcpy of every activation and gradient of
/// every linear layer); here the `gemm` crate (what flex calls, with flex's threading threshold)
/// writes straight into a fresh f32 buffer, and the backward pass computes Burn's two GEMMs
/// (`dx = dy w^T`, `dw = x^T dy`) the same way.
pub fn matmul<B: Backend>(x: Tensor<B, 2>, w: Tensor<B, 2>) -> Tensor<B, 2> {
    matmul_any(x, w, false)
}

/// `x` times `w` (`w_transposed`: times `w^T`), fused on flex, Burn's plain expression elsewhere.
fn matmul_any<B: Backend>(x: Tensor<B, 2>, w: Tensor<B, 2>, w_transposed: bool) -> Tensor<B, 2> {
    if let Some(out) = matmul_ad::<B, NoCheckpointing>(&x, &w, w_transposed) {
        return out;
    }
    if let Some(out) = matmul_ad::<B, BalancedCheckpointing>(&x, &w, w_transposed) {
        return out;
    }
    let x = match cast::<B, Flex, 2>(x) {
        Ok(x) => {
            let w = float(cast::<B, Flex, 2>(w).expect("B is Flex"));
            let w = if w_transposed { t(w) } else { w };
            return cast::<Flex, B, 2>(flex_tensor(mm(float(x), w))).expect("B is Flex");
        }
        Err(x) => x,
    };
    if w_transposed {
        plain::tied_logits(x, w)
    } else {
        plain::matmul(x, w)
    }
}

/// `a` `[m, k]` times `b` `[k, n]` into a new contiguous `[m, n]` tensor; Burn's matmul for
/// anything but two f32 matrices.
fn mm(a: FlexTensor, b: FlexTensor) -> FlexTensor {
    gemm_f32(&a, &b).unwrap_or_else(|| float(flex_tensor(a).matmul(flex_tensor(b))))
}

/// A transposed view (no copy).
fn t(a: FlexTensor) -> FlexTensor {
    float(flex_tensor(a).transpose())
}

fn gemm_f32(a: &FlexTensor, b: &FlexTensor) -> Option<FlexTensor> {
    let f32_2d = |t: &FlexTensor| t.dtype() == DType::F32 && t.layout().shape().num_dims() == 2;
    if !(f32_2d(a) && f32_2d(b)) {
        return None;
    }
    let (sa, sb) = (a.layout().shape(), b.layout().shape());
    let (m, n) = (sa[0], sb[1]);
    assert_eq!(sa[1], sb[0], "matmul: [{m}, {}] x [{}, {n}]", sa[1], sb[0]);
    // flex's layout as a strided view (negative strides: Burn's own matmul instead).
    fn view(t: &FlexTensor) -> Option<crate::gemm::MatView<'_>> {
        let (shape, strides) = (t.layout().shape(), t.layout().strides());
        Some(crate::gemm::MatView {
            data: t.storage::<f32>(),
            start: t.layout().start_offset(),
            rows: shape[0],
            cols: shape[1],
            row_stride: usize::try_from(strides[0]).ok()?,
            col_stride: usize::try_from(strides[1]).ok()?,
        })
    }
    let out = crate::gemm::matmul(view(a)?, view(b)?, 192 * 192 * 192)?;
    Some(FlexTensor::from_data(TensorData::new(out, [m, n])))
}

/// The backward pass of `x op(w)`, `op` the identity or (`w_transposed`) the transpose.
#[derive(Debug)]
struct MatmulBackward {
    w_transposed: bool,
}

impl Backward<Flex, 2> for MatmulBackward {
    /// The two operands, as given (`w` untransposed).
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w) = ops.state;
        let [px, pw] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        if let Some(node) = px {
            // dx = g op(w)^T
            let w_t = if self.w_transposed { w } else { t(w) };
            grads.register::<Flex>(node.id, mm(g.clone(), w_t));
        }
        if let Some(node) = pw {
            // dw = x^T g; for `w` used transposed, (x^T g)^T = g^T x, written contiguous.
            let dw = if self.w_transposed { mm(t(g), x) } else { mm(t(x), g) };
            grads.register::<Flex>(node.id, dw);
        }
    }
}

fn matmul_ad<B: Backend, C: CheckpointStrategy>(
    x: &Tensor<B, 2>,
    w: &Tensor<B, 2>,
    w_transposed: bool,
) -> Option<Tensor<B, 2>> {
    let x = float(cast::<B, Autodiff<Flex, C>, 2>(x.clone()).ok()?);
    let w = float(cast::<B, Autodiff<Flex, C>, 2>(w.clone()).ok()?);
    let op_w = if w_transposed { t(w.primitive.clone()) } else { w.primitive.clone() };
    let out = mm(x.primitive.clone(), op_w);
    let backward = MatmulBackward { w_transposed };
    let out = match backward.prepare::<C>([x.node.clone(), w.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    cast::<Autodiff<Flex, C>, B, 2>(Tensor::from_primitive(TensorPrimitive::Float(out))).ok()
}

// ---------------------------------------------------------------------------------------------
// Logits through tied embeddings

/// `hidden` `[n, h]` times the transposed embedding matrix `weight` `[vocab, h]`: the logits of a
/// model whose `lm_head` is its token embeddings. Autodiff's plain form gives the embeddings'
/// gradient as a transposed view (`(hidden^T dlogits)^T`), which every later use (the sum with the
/// embedding lookup's gradient, clipping, the optimizer) walks element by element across a
/// vocabulary-sized matrix on one thread; here the backward writes it contiguous (`dlogits^T
/// hidden`, one GEMM).
pub fn tied_logits<B: Backend>(hidden: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
    matmul_any(hidden, weight, true)
}

fn flex_tensor(t: FlexTensor) -> Tensor<Flex, 2> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::log_softmax;
    use burn::tensor::Distribution;

    type A = Autodiff<Flex>;

    fn close(a: Tensor<Flex, 2>, b: Tensor<Flex, 2>, what: &str) {
        let (a, b) = (a.into_data().to_vec::<f32>().unwrap(), b.into_data().to_vec::<f32>().unwrap());
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0f32, f32::max);
        assert!(worst < 1e-5, "{what}: worst relative difference {worst}");
    }

    /// The fused log-probabilities of targets and their gradient equal Burn's log_softmax + gather
    /// (inference and autodiff).
    #[test]
    fn target_log_probs_match_log_softmax_gather() {
        let device = Default::default();
        let x = Tensor::<Flex, 2>::random([7, 300], Distribution::Normal(0.0, 3.0), &device);
        let t = Tensor::<Flex, 1, Int>::from_data(TensorData::new(vec![0i64, 5, 299, 17, 17, 100, 3], [7]), &device);
        let want = log_softmax(x.clone(), 1).gather(1, t.clone().unsqueeze_dim(1)).squeeze_dim::<1>(1);
        close(target_log_probs(x.clone(), t.clone()).unsqueeze_dim(0), want.unsqueeze_dim(0), "forward");

        let weights = Tensor::<A, 1>::from_data(TensorData::new((1..=7).map(|i| i as f32).collect(), [7]), &device);
        let ta = Tensor::<A, 1, Int>::from_data(t.into_data(), &device);
        let grad = |fused: bool| {
            let xa = Tensor::<A, 2>::from_data(x.clone().into_data(), &device).require_grad();
            let lp = if fused {
                target_log_probs(xa.clone(), ta.clone())
            } else {
                log_softmax(xa.clone(), 1).gather(1, ta.clone().unsqueeze_dim(1)).squeeze_dim::<1>(1)
            };
            let g = (lp * weights.clone()).sum().backward();
            xa.grad(&g).expect("gradient")
        };
        close(grad(true), grad(false), "gradient");
    }

    /// The 2-D matmul: values and both gradients equal Burn's matmul.
    #[test]
    fn matmul_matches_burns_forward_and_backward() {
        let device = Default::default();
        // Big enough for the threaded GEMM (m n k >= 192^3) and small; `x` a view at an offset, `w`
        // a transposed view (as a linear layer's weight is after loading), frozen or trained.
        for (m, k, n, train_w) in [(200, 300, 130, true), (7, 5, 3, true), (9, 16, 12, false)] {
            let big = Tensor::<Flex, 2>::random([m + 1, k], Distribution::Normal(0.0, 1.0), &device);
            let w_hf = Tensor::<Flex, 2>::random([n, k], Distribution::Normal(0.0, 1.0), &device);
            let dy = Tensor::<A, 2>::random([m, n], Distribution::Normal(0.0, 1.0), &device);
            let run = |fused: bool| {
                let xa = Tensor::<A, 2>::from_data(big.clone().into_data(), &device).require_grad();
                let wa = Tensor::<A, 2>::from_data(w_hf.clone().into_data(), &device);
                let wa = if train_w { wa.require_grad() } else { wa };
                let (x, w) = (xa.clone().slice([1..m + 1, 0..k]), wa.clone().transpose());
                let y = if fused { matmul(x, w) } else { x.matmul(w) };
                let g = (y.clone() * dy.clone()).sum().backward();
                (y.inner(), xa.grad(&g).expect("d x"), wa.grad(&g))
            };
            let ((y1, dx1, dw1), (y2, dx2, dw2)) = (run(true), run(false));
            close(y1, y2, "output");
            close(dx1, dx2, "input gradient");
            match (dw1, dw2) {
                (Some(a), Some(b)) => close(a, b, "weight gradient"),
                (None, None) => assert!(!train_w),
                _ => panic!("weight gradient present on one side only"),
            }
            // Inference (no autodiff) takes the same GEMM.
            let (x, w) = (big.clone().slice([1..m + 1, 0..k]), w_hf.clone().transpose());
            close(matmul(x.clone(), w.clone()), x.matmul(w), "inference output");
        }
    }

    /// Logits through tied embeddings: values and both gradients equal the plain matmul's.
    #[test]
    fn tied_logits_match_the_plain_matmul() {
        let device = Default::default();
        let h = Tensor::<Flex, 2>::random([5, 8], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<Flex, 2>::random([40, 8], Distribution::Normal(0.0, 1.0), &device);
        let dy = Tensor::<A, 2>::random([5, 40], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let ha = Tensor::<A, 2>::from_data(h.clone().into_data(), &device).require_grad();
            let wa = Tensor::<A, 2>::from_data(w.clone().into_data(), &device).require_grad();
            let y = if fused { tied_logits(ha.clone(), wa.clone()) } else { ha.clone().matmul(wa.clone().transpose()) };
            let g = (y.clone() * dy.clone()).sum().backward();
            (y.inner(), ha.grad(&g).expect("d hidden"), wa.grad(&g).expect("d weight"))
        };
        let ((y1, dh1, dw1), (y2, dh2, dw2)) = (run(true), run(false));
        close(y1, y2, "logits");
        close(dh1, dh2, "hidden gradient");
        assert!(dw1.clone().into_primitive().tensor().is_contiguous(), "the embeddings' gradient is contiguous");
        close(dw1, dw2, "embedding gradient");
    }
}
