//! A Hugging Face model folder: `config.json`, `tokenizer.json` (+ `tokenizer_config.json`) and
//! safetensors weights. Opening it checks everything before any tensor is built.
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::{DecoderModel, LoadOptions};
use crate::tokenizer::TextTokenizer;
use crate::weights::{StoredDtype, WeightFiles};
use burn::tensor::backend::Backend;
use std::path::{Path, PathBuf};

pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub tokenizer: TextTokenizer,
    pub weights: WeightFiles,
}

impl Checkpoint {
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::config(dir, "model folder not found (or not a folder)"));
        }
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let tokenizer = TextTokenizer::from_dir(dir, &config)?;
        let weights = WeightFiles::open_dir(dir)?;
        Ok(Self {
            dir: dir.into(),
            config,
            tokenizer,
            weights,
        })
    }

    pub fn stored_dtype(&self) -> Option<StoredDtype> {
        self.weights.stored_dtype()
    }

    pub fn load_model<B: Backend>(&self, opts: LoadOptions, device: &B::Device) -> Result<DecoderModel<B>> {
        DecoderModel::load(&self.weights, &self.config, opts, device)
    }
}
