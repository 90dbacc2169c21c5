//! `llmql merge-lora`: base model + PEFT adapter -> a plain HF folder with merged weights
//! (W + alpha/r · B·A), in the base's stored dtype.
use anyhow::{Context, Result};
use clap::Args;
use llmql_core::model::LoadOptions;
use llmql_core::trained_with::TrainedWith;
use llmql_core::weights::StoredDtype;
use llmql_core::ModelSource;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct MergeLoraArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// PEFT adapter (adapter_config.json + adapter_model.safetensors), ours or Python PEFT's, in
    /// either layout (AutoModel/Tevatron or causal LM): a folder or a hub id org/name.
    #[arg(long)]
    pub adapter: PathBuf,
    /// Output folder (an HF model folder); an existing one is replaced only when llmql wrote it.
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value = "flex")]
    pub device: String,
}

struct Merge {
    a: MergeLoraArgs,
    ck: ModelSource,
}

impl llmql_backends::BackendTask for Merge {
    type Output = Result<()>;
    fn run<B: burn::tensor::backend::Backend>(self, device: B::Device) -> Result<()> {
        let dtype = self.ck.stored_dtype().unwrap_or(StoredDtype::F32);
        // Merge in f32, then store in the base's dtype.
        let lm_head = self.ck.weights.contains("lm_head.weight");
        let model = self.ck.load_model::<B>(
            LoadOptions { dtype: burn::tensor::DType::F32, lm_head, host_embeddings: false, compute_dtype: None },
            &device,
        )?;
        let model = llmql_core::lora::load_adapter(model, &self.a.adapter)?;
        let model = llmql_core::lora::merge_lora(model);
        // What the adapter was trained with holds for the merged model too.
        let record = llmql_core::lora::resolve_adapter_dir(&self.a.adapter)
            .ok()
            .map(|d| TrainedWith::read(&d))
            .transpose()?
            .flatten();
        llmql_core::export::save_hf_folder(&model, &self.ck.source_files(), &self.a.output, dtype, &mut |dir| {
            record.as_ref().map_or(Ok(()), |r| r.write(dir))
        })?;
        Ok(())
    }
}

pub fn run(a: MergeLoraArgs) -> Result<()> {
    let device: llmql_backends::DeviceSpec = a.device.parse()?;
    // Refused before any work: an existing --output is replaced only when llmql wrote it.
    llmql_core::output::check_replaceable(&a.output)?;
    let ck = ModelSource::open(&a.model).context("loading the base model")?;
    let out = a.output.clone();
    llmql_backends::run_on(&device, Merge { a, ck })??;
    tracing::info!("wrote merged model to {}", out.display());
    Ok(())
}
