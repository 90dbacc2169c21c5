//! The decoder LLM (Llama / Mistral / Qwen2), one small struct per piece, HF weight names kept.
pub mod attention;
#[cfg(not(target_arch = "wasm32"))]
pub mod cpu_kernels;
/// The browser build's kernels are the plain expressions.
#[cfg(target_arch = "wasm32")]
pub use cpu_kernels_generic as cpu_kernels;
pub mod cpu_kernels_generic;
pub mod decoder;
pub mod layer_runner;
pub mod linear;
pub mod mlp;
pub mod rms_norm;
pub mod rope;

pub use attention::{AttentionMask, LayerContext, SelfAttention, StepKv};
pub use decoder::{embed_tokens_name, DecoderLayer, DecoderModel, LayerKv, LoadOptions};
pub use layer_runner::{LayerRunner, PlainLayers};
pub use linear::Linear;
pub use mlp::Mlp;
pub use rms_norm::RmsNorm;
pub use rope::RotaryEmbedding;

/// Whether `B` computes on the host CPU (Burn's flex, also under autodiff): selects the CPU-friendly
/// forms of a few operations (attention, dropout masks) that other backends do differently.
pub fn cpu_backend<B: burn::tensor::backend::Backend>(device: &B::Device) -> bool {
    B::name(device).contains("flex")
}

/// Runs `f(model, item)` for every item and hands each result to `done` in input order. On the CPU
/// backend as many items as there are worker threads run at once, one per thread (each with its
/// own handle on the model; the weights are shared): Burn's flex runs element-wise operations on
/// one thread (only matmuls use all cores), so one batch at a time leaves cores idle, while with one
/// batch per thread every core stays busy and a thread's matmuls still spread over idle ones. Other
/// backends run the items one after the other.
pub fn for_each_batch<B, T, R>(
    model: &DecoderModel<B>,
    items: &[T],
    f: impl Fn(&DecoderModel<B>, &T) -> R + Sync,
    mut done: impl FnMut(&T, R),
) where
    B: burn::tensor::backend::Backend,
    T: Sync,
    R: Send,
{
    use rayon::prelude::*;
    let workers = if cpu_backend::<B>(&model.device()) { rayon::current_num_threads().max(1) } else { 1 };
    for group in items.chunks(workers) {
        let results: Vec<R> = if group.len() == 1 {
            vec![f(model, &group[0])]
        } else {
            group.par_iter().map_with(model.clone(), |m, item| f(m, item)).collect()
        };
        for (item, r) in group.iter().zip(results) {
            done(item, r);
        }
    }
}
