pub mod bench;
pub mod bm25;
pub mod dirichlet;
pub mod encode;
pub mod eval;
pub mod export_web;
pub mod info;
pub mod merge_lora;
pub mod mine_negatives;
pub mod ql_train;
pub mod quickstart;
pub mod rerank;
pub mod search;
pub mod train;

use anyhow::{bail, Result};
use burn::tensor::DType;

/// Parses `--dtype`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    Ok(match s {
        "f32" | "float32" => DType::F32,
        "f16" | "float16" => DType::F16,
        "bf16" | "bfloat16" => DType::BF16,
        o => bail!("invalid --dtype {o:?}: expected f32, f16 or bf16"),
    })
}

pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "other",
    }
}
