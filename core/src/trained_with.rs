//! What a trained model or adapter was trained with, recorded beside its weights as `llmql.json`, so
//! that every command that loads it encodes (or scores) its inputs as training did unless told
//! otherwise: `llmql train` records the dense encoder's settings in the adapter (or model) folder it
//! writes, `llmql ql-train` the query-likelihood lengths in its model folder. A model that records
//! nothing (any hub checkpoint, a GGUF file) gets [`crate::defaults`].
//!
//! Each field is optional so that a partial source (an index's `meta.json`, an older record) fills
//! only what it knows; the CLI layers sources in the order a command trusts them, field by field.
//! Neither Tevatron nor the reference records this (they rely on the user repeating the training
//! command's lengths at encoding time); the file is ours, and PEFT ignores it.
use crate::error::{Error, Result};
use crate::pooling::Pooling;
use crate::template::Template;
use crate::truncation::Truncation;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The record's file name inside a model or adapter folder.
pub const FILE: &str = "llmql.json";
/// The record's `format` field.
pub const FORMAT: &str = "llmql-trained-with/1";

/// The dense encoder's input and output settings (stage 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EncoderRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_max_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passage_max_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<Truncation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

/// Query likelihood's length limits and truncation (stage 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct QlRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_max_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_max_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<Truncation>,
}

/// The contents of `llmql.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedWith {
    /// [`FORMAT`].
    pub format: String,
    /// The command that trained it: `train` or `ql-train`.
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ql: Option<QlRecord>,
    pub llmql_version: String,
}

impl TrainedWith {
    /// A record of `command`'s run (this llmql's version).
    pub fn new(command: &str, encoder: Option<EncoderRecord>, ql: Option<QlRecord>) -> Self {
        Self {
            format: FORMAT.into(),
            command: command.into(),
            encoder,
            ql,
            llmql_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// The record's path in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Writes `dir/llmql.json` (atomically).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let p = Self::path(dir);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Json { path: p.clone(), source: e })?;
        crate::output::write_file_atomic(&p, &bytes)
    }

    /// The record of a model or adapter folder; `None` where `dir` is not a folder (a GGUF file, a hub
    /// id) or holds no record. A record that cannot be read is an error naming the file and field.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let p = Self::path(dir);
        if !dir.is_dir() || !p.is_file() {
            return Ok(None);
        }
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        let rec: TrainedWith =
            serde_json::from_slice(&bytes).map_err(|e| Error::Json { path: p.clone(), source: e })?;
        if rec.format != FORMAT {
            return Err(Error::config(&p, format!("field `format`: {:?} is not {FORMAT:?}", rec.format)));
        }
        Ok(Some(rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(TrainedWith::read(dir.path()).unwrap(), None);
        let enc = EncoderRecord { query_max_len: Some(40), pooling: Some(Pooling::Mean), ..Default::default() };
        let rec = TrainedWith::new("train", Some(enc), None);
        rec.write(dir.path()).unwrap();
        assert_eq!(TrainedWith::read(dir.path()).unwrap(), Some(rec));
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(text.contains("\"pooling\": \"mean\"") && !text.contains("template"), "{text}");
    }

    #[test]
    fn a_bad_record_names_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE);
        std::fs::write(&p, r#"{"format": "llmql-trained-with/1", "command": "train", "encoder": {"pooling": "max"}, "llmql_version": "0"}"#).unwrap();
        let e = TrainedWith::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("llmql.json") && e.contains("max"), "{e}");
        std::fs::write(&p, r#"{"format": "other/2", "command": "train", "llmql_version": "0"}"#).unwrap();
        let e = TrainedWith::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("llmql.json") && e.contains("format"), "{e}");
    }
}
