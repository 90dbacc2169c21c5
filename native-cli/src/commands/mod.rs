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

/// Runs a training task on one device, or data-parallel on several (`--devices`): one peer per
/// device, each in its own thread with its own copy of the model, joined by an in-process
/// all-reduce (see `llmql_core::train::data_parallel`). Fails if any peer fails.
pub fn run_peers<T, F>(devices: &[llmql_backends::DeviceSpec], checkpointing: bool, make: F) -> Result<()>
where
    T: llmql_backends::AutodiffTask<Output = Result<()>> + Send,
    F: Fn(llmql_core::train::data_parallel::ThreadCollective) -> T + Sync,
{
    use llmql_core::train::data_parallel::ThreadCollective;
    if devices.len() > 1 {
        tracing::info!("data parallel over {} devices", devices.len());
    }
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = ThreadCollective::group(devices.len())
            .into_iter()
            .zip(devices)
            .map(|(c, d)| {
                let task = make(c);
                s.spawn(move || llmql_backends::run_autodiff_on(d, checkpointing, task).map_err(anyhow::Error::from).and_then(|r| r))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a training thread panicked")))).collect()
    });
    results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
}

/// `--devices a,b,...` (or `--device`) as device specs.
pub fn device_list(device: &str, devices: Option<&str>) -> Result<Vec<llmql_backends::DeviceSpec>> {
    let list = devices.unwrap_or(device);
    let v = list.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| d.parse()).collect::<Result<Vec<_>, _>>()?;
    if v.is_empty() {
        bail!("--devices: no device given");
    }
    Ok(v)
}

/// How training loads a model for `--dtype`: with a half-precision dtype, full fine-tuning keeps f32
/// master weights (and f32 AdamW state) and computes in that dtype; a LoRA run keeps the frozen base
/// in that dtype (its adapters are f32 anyway).
pub fn training_load(dtype: DType, lora: bool, lm_head: bool) -> llmql_core::model::LoadOptions {
    let half = dtype != DType::F32;
    llmql_core::model::LoadOptions {
        dtype: if half && !lora { DType::F32 } else { dtype },
        lm_head,
        host_embeddings: false,
        compute_dtype: (half && !lora).then_some(dtype),
    }
}
