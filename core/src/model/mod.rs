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
