//! `tokenizer.json` through the `tokenizers` crate, with EOS resolved as transformers resolves it.
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

#[derive(Clone)]
pub struct TextTokenizer {
    pub tokenizer: Tokenizer,
    pub eos_id: u32,
    pub eos_token: String,
    /// The BOS id, when the tokenizer's own post-processor adds one (we never add it ourselves).
    pub bos_id: Option<u32>,
    path: PathBuf,
}

fn token_field(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
        _ => None,
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` (and `tokenizer_config.json` when present) from a model folder.
    pub fn from_dir(dir: &Path, config: &ModelConfig) -> Result<Self> {
        let path = crate::paths::model_file(dir, "tokenizer.json")?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let tok_cfg = if let Some(cfg_path) = crate::paths::model_file_opt(dir, "tokenizer_config.json")? {
            let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
            Some(
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|source| Error::Json { path: cfg_path.clone(), source })?,
            )
        } else {
            None
        };
        Self::from_bytes(&bytes, tok_cfg.as_ref(), config, &path)
    }

    /// Builds from in-memory `tokenizer.json` bytes (the browser's path) and an optional parsed
    /// `tokenizer_config.json`.
    pub fn from_bytes(
        tokenizer_json: &[u8],
        tokenizer_config: Option<&serde_json::Value>,
        config: &ModelConfig,
        path: &Path,
    ) -> Result<Self> {
        let tokenizer = Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| Error::Tokenizer { path: path.into(), message: e.to_string() })?;
        let terr = |message: String| Error::Tokenizer { path: path.into(), message };
        let (eos_id, eos_token) = match tokenizer_config.and_then(|c| token_field(c, "eos_token")) {
            Some(tok) => {
                let id = tokenizer.token_to_id(&tok).ok_or_else(|| {
                    terr(format!("eos_token {tok:?} from tokenizer_config.json is not in the vocabulary"))
                })?;
                (id, tok)
            }
            None => {
                let id = config.eos_token_id.ok_or_else(|| {
                    terr(
                        "no EOS token: neither tokenizer_config.json `eos_token` nor config.json `eos_token_id` is set"
                            .into(),
                    )
                })?;
                let tok = tokenizer.id_to_token(id).unwrap_or_default();
                (id, tok)
            }
        };
        // Every id the tokenizer can produce must have a row in the embedding table (whose size,
        // `vocab_size`, the weights are checked against): an id past it would make the embedding
        // lookup read out of bounds. Checked once here, for every path that pairs a tokenizer with
        // a model (folders, GGUF files, hub ids and the browser's bytes).
        let max_id = tokenizer.get_vocab(true).into_values().chain([eos_id]).max().unwrap_or(0);
        if max_id as usize >= config.vocab_size {
            return Err(terr(format!(
                "the tokenizer produces token id {max_id}, but the model's embedding table has only {} rows \
                 (config.json `vocab_size`): the tokenizer does not belong to this model",
                config.vocab_size
            )));
        }
        // BOS: only what the post-processor adds. Probe it on a plain text.
        let probe = tokenizer.encode("a", true).map_err(|e| terr(e.to_string()))?;
        let plain = tokenizer.encode("a", false).map_err(|e| terr(e.to_string()))?;
        if let Some(&id) = probe.get_ids().iter().find(|&&i| i as usize >= config.vocab_size) {
            return Err(terr(format!(
                "the tokenizer's post-processor adds token id {id}, past the model's {} embedding rows (config.json `vocab_size`)",
                config.vocab_size
            )));
        }
        let bos_id = if probe.get_ids().len() > plain.get_ids().len() {
            probe.get_ids().first().copied().filter(|&id| Some(&id) != plain.get_ids().first())
        } else {
            None
        };
        Ok(Self { tokenizer, eos_id, eos_token, bos_id, path: path.into() })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Token ids for a text with the reference's truncation: the text with the tokenizer's special
    /// tokens, cut to `max_len - 1` tokens (as transformers truncates, keeping post-processor
    /// tokens), then the EOS id. Encoder inputs go through [`Self::encode_input`].
    pub fn encode_with_eos(&self, text: &str, max_len: usize) -> Result<Vec<u32>> {
        let parts =
            crate::template::TemplateParts { prefix: String::new(), content: text.to_string(), suffix: String::new() };
        Ok(self.encode_input(&parts, max_len, crate::truncation::Truncation::Reference)?.ids)
    }

    /// The text with special tokens when `special`, untruncated.
    pub(crate) fn encode_raw(&self, text: &str, special: bool) -> Result<tokenizers::Encoding> {
        self.tokenizer.encode(text, special).map_err(|e| self.error(e.to_string()))
    }

    /// The text with special tokens, untruncated.
    pub fn encode_full(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encode_raw(text, true)?.get_ids().to_vec())
    }

    pub(crate) fn error(&self, message: String) -> Error {
        Error::Tokenizer { path: self.path.clone(), message }
    }

    /// Token ids without special tokens (for pieces of a prompt assembled by hand).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encode_raw(text, false)?.get_ids().to_vec())
    }
}
