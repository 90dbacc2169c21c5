//! The plain Burn expressions the fused kernels of `cpu_kernels.rs` stand for, with the same
//! signatures: what `cpu_kernels.rs` falls back to on other backends, dtypes and layouts, and the
//! browser build's `cpu_kernels` (which cannot name Burn's flex and autodiff backends or x86
//! instruction sets).
use burn::tensor::activation::{log_softmax, silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// `silu(gate) * up`.
pub fn swiglu<B: Backend, const D: usize>(gate: Tensor<B, D>, up: Tensor<B, D>) -> Tensor<B, D> {
    silu(gate) * up
}

/// `x` `[m, k]` times `w` `[k, n]`.
pub fn matmul<B: Backend>(x: Tensor<B, 2>, w: Tensor<B, 2>) -> Tensor<B, 2> {
    x.matmul(w)
}

/// Softmax over the last dimension of `x` `[rows, n]`.
pub fn softmax_rows<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    softmax(x, 1)
}

/// `log_softmax(logits, 1)[i, targets[i]]`.
pub fn target_log_probs<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    log_softmax(logits, 1).gather(1, targets.unsqueeze_dim(1)).squeeze_dim::<1>(1)
}

/// No fused RMSNorm here: the caller computes it with Burn's operations.
pub fn rms_norm<B: Backend, const D: usize>(_x: &Tensor<B, D>, _w: &Tensor<B, 1>, _eps: f64) -> Option<Tensor<B, D>> {
    None
}

/// A dropout mask (see `cpu_kernels.rs`), one element after the other.
pub fn dropout_mask(seed: u64, keep: f64, scale: f32, n: usize) -> Vec<f32> {
    let threshold = (keep * 4_294_967_296.0) as u64;
    (0..n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            if (z >> 32) < threshold {
                scale
            } else {
                0.0
            }
        })
        .collect()
}

/// One AdamW step's scalars, as Burn's `AdamW` computes them (see `crate::train::adamw`).
#[derive(Debug, Clone, Copy)]
pub struct AdamWScalars {
    pub lr: f64,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
    /// The step number, from 1 (bias correction).
    pub time: i32,
}

/// The parameter and its two moments after one AdamW step.
pub type AdamWOutput<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>, Tensor<B, D>);
/// The inputs of `adamw_update` given back where no fused kernel applies.
pub type AdamWInputs<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>, Option<(Tensor<B, D>, Tensor<B, D>)>);

/// No fused AdamW in plain expressions: the inputs are given back for Burn's `AdamW`.
pub fn adamw_update<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
    _k: &AdamWScalars,
) -> Result<AdamWOutput<B, D>, AdamWInputs<B, D>> {
    Err((param, grad, moments))
}

/// `sum(t^2)`.
pub fn sum_squares<B: Backend, const D: usize>(t: Tensor<B, D>) -> f64 {
    use burn::tensor::{DType, ElementConversion};
    t.cast(DType::F32).powi_scalar(2).sum().into_scalar().elem::<f64>()
}

/// `t * factor`.
pub fn scale<B: Backend, const D: usize>(t: Tensor<B, D>, factor: f64) -> Tensor<B, D> {
    t * factor
}

/// `hidden` `[n, h]` times the transposed embeddings `weight` `[vocab, h]`.
pub fn tied_logits<B: Backend>(hidden: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
    hidden.matmul(weight.transpose())
}
