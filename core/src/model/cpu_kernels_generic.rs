//! The browser build's stand-in for `cpu_kernels.rs` (which names Burn's flex and autodiff backends
//! and x86 instruction sets): the same functions as plain Burn expressions.
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// `silu(gate) * up`.
pub fn swiglu<B: Backend, const D: usize>(gate: Tensor<B, D>, up: Tensor<B, D>) -> Tensor<B, D> {
    silu(gate) * up
}

/// Softmax over the last dimension of `x` `[rows, n]`.
pub fn softmax_rows<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    softmax(x, 1)
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
