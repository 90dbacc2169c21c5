//! Where a model comes from, resolved to one thing: config, tokenizer and weights. `--model` may be
//! - a Hugging Face folder: `config.json`, `tokenizer.json` (+ `tokenizer_config.json`), safetensors;
//! - a llama.cpp `.gguf` file (config, tokenizer and weights all from the file; see [`crate::gguf`]);
//! - a hub id `org/name[@revision]`, resolved through the HF cache (see [`crate::hub`]).
//!
//! Opening checks everything before any tensor is built.
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::{DecoderModel, LoadOptions};
use crate::tokenizer::TextTokenizer;
use crate::weights::{StoredDtype, WeightFiles};
use burn::tensor::backend::Backend;
use std::path::{Path, PathBuf};

/// Tokenizer and generation files carried along when a model is saved (copied from a folder, or
/// written from a GGUF file's metadata).
pub const TOKENIZER_FILES: [&str; 6] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "tokenizer.model",
    "chat_template.jinja",
];

/// What a saved model carries over from the model it was trained from: the tokenizer files and a
/// name (PEFT's `base_model_name_or_path`).
#[derive(Clone, Debug, Default)]
pub struct SourceFiles {
    pub name: String,
    pub files: Vec<(String, Vec<u8>)>,
}

impl SourceFiles {
    /// Writes the files into `dir`.
    pub fn write_into(&self, dir: &Path) -> Result<()> {
        write_files(&self.files, dir)
    }
}

pub struct ModelSource {
    /// The folder or file the model was read from (a hub id resolves to its snapshot folder).
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub tokenizer: TextTokenizer,
    pub weights: WeightFiles,
    /// `TOKENIZER_FILES` of this model, by name, to write beside saved weights.
    pub tokenizer_files: Vec<(String, Vec<u8>)>,
}

impl ModelSource {
    /// Opens a folder, a `.gguf` file or a hub id (see the module docs).
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Self::open_folder(path);
        }
        if path.is_file() {
            let is_gguf =
                path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) || starts_with_gguf_magic(path);
            if is_gguf {
                return Self::open_gguf(path);
            }
            return Err(Error::config(
                path,
                "a file, but not a GGUF file: pass a model folder (config.json, tokenizer.json, safetensors), a .gguf file or a hub id org/name",
            ));
        }
        #[cfg(feature = "hub")]
        if let Some(s) = path.to_str() {
            if crate::hub::looks_like_repo_id(s) {
                let dir = crate::hub::resolve(s)?;
                return Self::open_folder(&dir);
            }
        }
        Err(Error::config(
            path,
            "model not found: not a folder, not a .gguf file, and not a hub id of the form org/name",
        ))
    }

    fn open_folder(dir: &Path) -> Result<Self> {
        let config = ModelConfig::from_file(&crate::paths::model_file(dir, "config.json")?)?;
        let tokenizer = TextTokenizer::from_dir(dir, &config)?;
        let weights = WeightFiles::open_dir(dir)?;
        let mut tokenizer_files = Vec::new();
        for f in TOKENIZER_FILES {
            if let Some(p) = crate::paths::model_file_opt(dir, f)? {
                tokenizer_files.push((f.to_string(), std::fs::read(&p).map_err(|e| Error::io(&p, e))?));
            }
        }
        Ok(Self { dir: dir.into(), config, tokenizer, weights, tokenizer_files })
    }

    fn open_gguf(path: &Path) -> Result<Self> {
        let file = crate::gguf::GgufFile::open(path)?;
        let config_json = crate::gguf::config_json(&file)?;
        let config = ModelConfig::from_json_str(&config_json.to_string(), path)?;
        let files = crate::gguf::vocab::tokenizer_files(&file)?;
        let tok_bytes = serde_json::to_vec(&files.tokenizer_json).expect("json");
        let tokenizer = TextTokenizer::from_bytes(&tok_bytes, Some(&files.tokenizer_config), &config, path)?;
        let tokenizer_files = vec![
            ("tokenizer.json".to_string(), tok_bytes),
            ("tokenizer_config.json".to_string(), serde_json::to_vec_pretty(&files.tokenizer_config).expect("json")),
        ];
        Ok(Self { dir: path.into(), config, tokenizer, weights: WeightFiles::from_gguf(file)?, tokenizer_files })
    }

    /// Builds a checkpoint from files held in memory (the browser's path): `config.json`,
    /// `tokenizer.json`, optional `tokenizer_config.json`, and safetensors files as `(name, bytes)`.
    /// `origin` names the model in messages.
    pub fn from_bytes(
        origin: &str,
        config_json: &[u8],
        tokenizer_json: &[u8],
        tokenizer_config: Option<&[u8]>,
        weights: Vec<(String, Vec<u8>)>,
    ) -> Result<Self> {
        let dir = PathBuf::from(origin);
        let cfg_path = dir.join("config.json");
        let text = std::str::from_utf8(config_json).map_err(|_| Error::config(&cfg_path, "not UTF-8 text"))?;
        let config = ModelConfig::from_json_str(text, &cfg_path)?;
        let tok_cfg_path = dir.join("tokenizer_config.json");
        let tok_cfg = match tokenizer_config {
            Some(b) => Some(
                serde_json::from_slice::<serde_json::Value>(b)
                    .map_err(|source| Error::Json { path: tok_cfg_path.clone(), source })?,
            ),
            None => None,
        };
        let tokenizer =
            TextTokenizer::from_bytes(tokenizer_json, tok_cfg.as_ref(), &config, &dir.join("tokenizer.json"))?;
        let mut tokenizer_files = vec![("tokenizer.json".to_string(), tokenizer_json.to_vec())];
        if let Some(b) = tokenizer_config {
            tokenizer_files.push(("tokenizer_config.json".to_string(), b.to_vec()));
        }
        let weights = WeightFiles::from_bytes(&dir, weights)?;
        Ok(Self { dir, config, tokenizer, weights, tokenizer_files })
    }

    pub fn stored_dtype(&self) -> Option<StoredDtype> {
        self.weights.stored_dtype()
    }

    pub fn load_model<B: Backend>(&self, opts: LoadOptions, device: &B::Device) -> Result<DecoderModel<B>> {
        DecoderModel::load(&self.weights, &self.config, opts, device)
    }

    /// The tokenizer files and name a model trained from this one carries.
    pub fn source_files(&self) -> SourceFiles {
        SourceFiles { name: self.dir.display().to_string(), files: self.tokenizer_files.clone() }
    }
}

/// True when the file's first four bytes are `GGUF` (reads only those).
fn starts_with_gguf_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"GGUF"
}

pub fn write_files(files: &[(String, Vec<u8>)], dir: &Path) -> Result<()> {
    for (name, bytes) in files {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}
