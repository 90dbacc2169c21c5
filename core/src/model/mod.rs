//! The decoder LLM (Llama / Mistral / Qwen2), one small struct per piece, HF weight names kept.
pub mod attention;
pub mod decoder;
pub mod linear;
pub mod mlp;
pub mod rms_norm;
pub mod rope;

pub use attention::{AttentionMask, LayerContext, SelfAttention};
pub use decoder::{embed_tokens_name, DecoderLayer, DecoderModel, LayerKv, LoadOptions};
pub use linear::Linear;
pub use mlp::Mlp;
pub use rms_norm::RmsNorm;
pub use rope::RotaryEmbedding;

/// Whether `B` computes on the host CPU (Burn's flex, also under autodiff): selects the CPU-friendly
/// forms of a few operations (attention, dropout masks) that other backends do differently.
pub fn cpu_backend<B: burn::tensor::backend::Backend>(device: &B::Device) -> bool {
    B::name(device).contains("flex")
}
