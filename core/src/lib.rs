//! # llmql-core
//!
//! LLM-QL (dense retrieval with LLMs trained by query-likelihood modeling) on Burn, generic over
//! the backend. One file per idea:
//! - [`config`]: `config.json` of Llama / Mistral / Qwen2 checkpoints
//! - [`weights`]: safetensors (single or sharded; f32/f16/bf16) -> tensors, with one error listing problems
//! - [`gguf`], [`hub`]: llama.cpp GGUF files and Hugging Face hub ids as model sources
//! - [`model`]: the decoder (RoPE, RMSNorm, GQA attention, SwiGLU MLP), HF weight names kept
//! - [`tokenizer`]: `tokenizer.json` and EOS resolution
//! - [`truncation`]: cutting long inputs (content only, or the reference's whole-string cut) and counting cuts
//! - [`template`]: the reference's query/passage instruction strings
//! - [`pooling`]: eos / mean pooling and L2 normalisation
//! - [`encoder`]: text -> normalised vector, batched with padding that never changes a result
//! - [`records`]: BEIR-style JSON lines input
//! - [`npy`]: `.npy` float32 matrices
//! - [`paths`]: files a model folder names are regular files inside it
//! - [`search`]: exact inner-product top-K over encoded shards
//! - [`index`]: `llmql index` folders: flat (exact) and HNSW (approximate) search over encoded shards
//! - [`trec`], [`metrics`]: qrels and runs; nDCG, RR, R, P, AP exactly as trec_eval / ir-measures
//! - [`formats`]: BEIR, MS MARCO tsv, Tevatron jsonl
//! - [`consistency`]: the consistency filter for generated queries (a query's passage must rank in the top k)
//! - [`fusion`]: interpolating a first-stage run with a reranker's, the weight chosen on held-out queries
//! - [`bm25`], [`dirichlet`], [`mining`]: BM25 (tantivy), Dirichlet-smoothed word QL, hard-negative mining
//! - [`ql`]: LLM-QL stage 1 — Attention Stop mask, Input Corruption, example layouts, loss, QL ranking,
//!   query generation with the stage-1 model
//! - [`train`]: training loops, schedule, clipping, checkpoints and resume
//! - [`export`]: writing HF folders
//! - [`output`]: outputs that never destroy the user's files or the previous output (markers, atomic replace)
//! - [`lora`]: factored LoRA, merging, PEFT adapter files
#[cfg(feature = "bm25")]
pub mod bm25;
pub mod config;
pub mod consistency;
pub mod defaults;
#[cfg(feature = "bm25")]
pub mod dirichlet;
pub mod encoder;
pub mod error;
pub mod export;
pub mod formats;
pub mod fusion;
#[cfg(not(target_arch = "wasm32"))]
pub mod gemm;
pub mod gguf;
#[cfg(feature = "hub")]
pub mod hub;
pub mod index;
pub mod infonce;
pub mod lora;
pub mod metrics;
pub mod mining;
pub mod model;
pub mod model_source;
pub mod npy;
pub mod output;
pub mod paths;
pub mod pooling;
pub mod ql;
pub mod records;
pub mod search;
pub mod template;
pub mod tokenizer;
pub mod train;
pub mod trained_with;
pub mod trec;
pub mod truncation;
pub mod weights;

#[cfg(test)]
mod fuzz_tests;

pub use config::{Family, ModelConfig};
pub use encoder::{Encoder, EncoderOptions};
pub use error::{Error, Result};
pub use model_source::ModelSource;
pub use template::{Kind, Template};
