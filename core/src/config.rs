//! `config.json` of a Hugging Face decoder checkpoint (Llama, Mistral, Qwen2), read as transformers reads it.
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The decoder families llmql runs. They share one architecture; the differences are data:
/// Qwen2 has q/k/v biases and (often) tied embeddings; Mistral adds a sliding window that only
/// matters beyond 4096 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Llama,
    Mistral,
    Qwen2,
}

impl Family {
    pub fn name(&self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Mistral => "mistral",
            Family::Qwen2 => "qwen2",
        }
    }
}

/// RoPE frequency scaling (`rope_scaling` / `rope_parameters`), as far as llmql supports it.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Llama 3.1's wavelength-dependent scaling.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: usize },
}

/// The fields of `config.json` that define the network.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub family: Family,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub tie_word_embeddings: bool,
    pub vocab_size: usize,
    /// Bias on q_proj/k_proj/v_proj (Qwen2 always; Llama when `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on o_proj (Llama when `attention_bias`; never Qwen2).
    pub o_bias: bool,
    pub max_position_embeddings: Option<usize>,
    /// `torch_dtype` / `dtype` as written (the dtype the weights were saved in), if any.
    pub torch_dtype: Option<String>,
    pub bos_token_id: Option<u32>,
    /// First of `eos_token_id` when it is a list.
    pub eos_token_id: Option<u32>,
    /// The JSON object itself, so that exporters can write it back unchanged.
    pub raw: serde_json::Value,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    rope_parameters: Option<serde_json::Value>,
    tie_word_embeddings: Option<bool>,
    vocab_size: Option<usize>,
    attention_bias: Option<bool>,
    max_position_embeddings: Option<usize>,
    torch_dtype: Option<String>,
    dtype: Option<String>,
    bos_token_id: Option<serde_json::Value>,
    eos_token_id: Option<serde_json::Value>,
}

fn first_id(v: &Option<serde_json::Value>) -> Option<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|x| x as u32),
        Some(serde_json::Value::Array(a)) => a.first().and_then(|x| x.as_u64()).map(|x| x as u32),
        _ => None,
    }
}

impl ModelConfig {
    /// Reads `config.json` from a file path.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses a `config.json` text; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| Error::Json { path: path.into(), source })?;
        let raw: RawConfig =
            serde_json::from_value(value.clone()).map_err(|source| Error::Json { path: path.into(), source })?;
        let need =
            |v: Option<usize>, name: &str| v.ok_or_else(|| Error::config(path, format!("missing field `{name}`")));
        let model_type = raw.model_type.clone().ok_or_else(|| Error::config(path, "missing field `model_type`"))?;
        let family = match model_type.as_str() {
            "llama" => Family::Llama,
            "mistral" => Family::Mistral,
            "qwen2" => Family::Qwen2,
            other => {
                return Err(Error::config(
                    path,
                    format!("field `model_type`: unsupported model type {other:?} (supported: llama, mistral, qwen2)"),
                ))
            }
        };
        // Every size is checked before any arithmetic on it (a 0 would divide by zero below; an
        // absurd one would ask for more memory than exists).
        let size = |v: Option<usize>, name: &str, max: usize| -> Result<usize> {
            let v = need(v, name)?;
            if v == 0 || v > max {
                return Err(Error::config(path, format!("field `{name}`: {v} is out of range (1 to {max})")));
            }
            Ok(v)
        };
        let hidden_size = size(raw.hidden_size, "hidden_size", MAX_DIM)?;
        let num_attention_heads = size(raw.num_attention_heads, "num_attention_heads", MAX_DIM)?;
        let num_key_value_heads = match raw.num_key_value_heads {
            Some(_) => size(raw.num_key_value_heads, "num_key_value_heads", MAX_DIM)?,
            None => num_attention_heads,
        };
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(Error::config(
                path,
                format!(
                    "field `num_key_value_heads`: {num_key_value_heads} does not divide num_attention_heads {num_attention_heads}"
                ),
            ));
        }
        let head_dim = match raw.head_dim {
            Some(_) => size(raw.head_dim, "head_dim", MAX_DIM)?,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(Error::config(
                        path,
                        "field `head_dim` missing and hidden_size is not a multiple of num_attention_heads",
                    ));
                }
                hidden_size / num_attention_heads
            }
        };

        // Rope settings: transformers <= 4 writes `rope_theta` + `rope_scaling`; transformers 5 writes
        // `rope_parameters` (which holds rope_theta and, for scaled kinds, the scaling fields).
        let params = raw.rope_parameters.as_ref().filter(|v| v.is_object());
        let scaling_value = raw.rope_scaling.as_ref().filter(|v| v.is_object()).or(params);
        let rope_theta = raw
            .rope_theta
            .or_else(|| params.and_then(|p| p.get("rope_theta")).and_then(|v| v.as_f64()))
            .or_else(|| raw.rope_scaling.as_ref().and_then(|p| p.get("rope_theta")).and_then(|v| v.as_f64()))
            .unwrap_or(match family {
                Family::Qwen2 => 1_000_000.0,
                _ => 10_000.0,
            });
        let rope_scaling = match scaling_value {
            None => None,
            Some(s) => parse_rope_scaling(s, path)?,
        };
        if head_dim % 2 != 0 {
            return Err(Error::config(
                path,
                format!("field `head_dim`: {head_dim} is odd (rotary embeddings need an even head size)"),
            ));
        }
        positive_finite(path, "rope_theta", rope_theta)?;
        let rms_norm_eps = raw.rms_norm_eps.unwrap_or(1e-6);
        positive_finite(path, "rms_norm_eps", rms_norm_eps)?;
        let intermediate_size = size(raw.intermediate_size, "intermediate_size", MAX_DIM)?;
        let num_hidden_layers = size(raw.num_hidden_layers, "num_hidden_layers", MAX_LAYERS)?;
        let vocab_size = size(raw.vocab_size, "vocab_size", MAX_VOCAB)?;
        Ok(ModelConfig {
            family,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            vocab_size,
            qkv_bias: match family {
                Family::Qwen2 => true,
                _ => raw.attention_bias.unwrap_or(false),
            },
            o_bias: match family {
                Family::Llama => raw.attention_bias.unwrap_or(false),
                _ => false,
            },
            max_position_embeddings: raw.max_position_embeddings,
            torch_dtype: raw.torch_dtype.or(raw.dtype),
            bos_token_id: first_id(&raw.bos_token_id),
            eos_token_id: first_id(&raw.eos_token_id),
            raw: value,
        })
    }

    /// Number of parameters the network holds (embeddings counted once when tied); computed in
    /// u128 so that no accepted config overflows, saturated to `usize`.
    pub fn parameter_count(&self) -> usize {
        let h = self.hidden_size as u128;
        let q = self.num_attention_heads as u128 * self.head_dim as u128;
        let kv = self.num_key_value_heads as u128 * self.head_dim as u128;
        let bias = if self.qkv_bias { q + 2 * kv } else { 0 } + if self.o_bias { h } else { 0 };
        let attn = h * q + 2 * h * kv + q * h + bias;
        let mlp = 3 * h * self.intermediate_size as u128;
        let layer = attn + mlp + 2 * h;
        let emb = self.vocab_size as u128 * h;
        let head = if self.tie_word_embeddings { 0 } else { emb };
        usize::try_from(emb + head + self.num_hidden_layers as u128 * layer + h).unwrap_or(usize::MAX)
    }
}

/// Largest width llmql accepts for a hidden, head or MLP size or a head count (2^20; 7B models
/// use 4,096 / 14,336).
pub const MAX_DIM: usize = 1 << 20;
/// Largest vocabulary (2^24; today's largest are ~256k).
pub const MAX_VOCAB: usize = 1 << 24;
/// Most decoder layers (models have tens to ~130).
pub const MAX_LAYERS: usize = 4096;

/// A float field that must be finite and above zero.
fn positive_finite(path: &Path, name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::config(path, format!("field `{name}`: {v} must be a finite number above 0")))
    }
}

fn parse_rope_scaling(s: &serde_json::Value, path: &Path) -> Result<Option<RopeScaling>> {
    let kind = s.get("rope_type").or_else(|| s.get("type")).and_then(|v| v.as_str()).unwrap_or("default");
    match kind {
        "default" => Ok(None),
        "llama3" => {
            let f = |name: &str| {
                s.get(name).and_then(|v| v.as_f64()).ok_or_else(|| {
                    Error::config(path, format!("field `rope_scaling.{name}` missing for rope_type llama3"))
                })
            };
            let (factor, low, high) = (f("factor")?, f("low_freq_factor")?, f("high_freq_factor")?);
            let original = f("original_max_position_embeddings")?;
            positive_finite(path, "rope_scaling.factor", factor)?;
            positive_finite(path, "rope_scaling.low_freq_factor", low)?;
            positive_finite(path, "rope_scaling.high_freq_factor", high)?;
            positive_finite(path, "rope_scaling.original_max_position_embeddings", original)?;
            if high <= low {
                return Err(Error::config(
                    path,
                    format!("field `rope_scaling.high_freq_factor`: {high} must be above low_freq_factor {low}"),
                ));
            }
            Ok(Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: original as usize,
            }))
        }
        other => Err(Error::config(
            path,
            format!("field `rope_scaling.rope_type`: {other:?} is not supported (supported: default, llama3)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ModelConfig> {
        ModelConfig::from_json_str(s, Path::new("config.json"))
    }

    const BASE: &str = r#""hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "vocab_size": 100"#;

    #[test]
    fn rope_theta_from_either_key() {
        let a = parse(&format!(r#"{{"model_type":"llama", {BASE}, "rope_theta": 5.0}}"#)).unwrap();
        assert_eq!(a.rope_theta, 5.0);
        let b = parse(&format!(
            r#"{{"model_type":"mistral", {BASE}, "rope_parameters": {{"rope_type":"default","rope_theta": 7.0}}}}"#
        ))
        .unwrap();
        assert_eq!(b.rope_theta, 7.0);
        assert_eq!(b.rope_scaling, None);
        assert_eq!(b.head_dim, 16);
        assert_eq!(b.num_key_value_heads, 4);
    }

    #[test]
    fn unknown_model_type_and_rope_kind_are_errors() {
        let e = parse(&format!(r#"{{"model_type":"gpt2", {BASE}}}"#)).unwrap_err();
        assert!(e.to_string().contains("unsupported model type \"gpt2\""), "{e}");
        let e =
            parse(&format!(r#"{{"model_type":"llama", {BASE}, "rope_scaling": {{"rope_type":"yarn","factor":2.0}}}}"#))
                .unwrap_err();
        assert!(e.to_string().contains("\"yarn\" is not supported"), "{e}");
        let e = parse(r#"{"model_type":"llama"}"#).unwrap_err();
        assert!(e.to_string().contains("hidden_size"), "{e}");
    }

    #[test]
    fn sizes_and_factors_out_of_range_are_errors() {
        let with = |extra: &str| {
            parse(&format!(
                r#"{{"model_type":"llama", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "vocab_size": 100, {extra}}}"#
            ))
        };
        let e = with(r#""num_attention_heads": 0"#).unwrap_err().to_string();
        assert!(e.contains("field `num_attention_heads`: 0 is out of range"), "{e}");
        let e = with(r#""num_attention_heads": 4, "num_key_value_heads": 0"#).unwrap_err().to_string();
        assert!(e.contains("field `num_key_value_heads`: 0"), "{e}");
        let e = with(r#""num_attention_heads": 4, "head_dim": 0"#).unwrap_err().to_string();
        assert!(e.contains("field `head_dim`"), "{e}");
        let e = with(r#""num_attention_heads": 4, "head_dim": 7"#).unwrap_err().to_string();
        assert!(e.contains("is odd"), "{e}");
        let e = with(r#""num_attention_heads": 4, "rope_theta": 0"#).unwrap_err().to_string();
        assert!(e.contains("field `rope_theta`"), "{e}");
        let e = with(r#""num_attention_heads": 4, "rms_norm_eps": -1"#).unwrap_err().to_string();
        assert!(e.contains("field `rms_norm_eps`"), "{e}");
        let e = parse(
            r#"{"model_type":"llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "vocab_size": 1000000000000}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("field `vocab_size`"), "{e}");
        let llama3 = |factor: &str, low: &str, high: &str| {
            with(&format!(
                r#""num_attention_heads": 4, "rope_scaling": {{"rope_type": "llama3", "factor": {factor},
                "low_freq_factor": {low}, "high_freq_factor": {high}, "original_max_position_embeddings": 8192}}"#
            ))
        };
        assert!(llama3("8.0", "1.0", "4.0").is_ok());
        let e = llama3("0", "1.0", "4.0").unwrap_err().to_string();
        assert!(e.contains("field `rope_scaling.factor`: 0"), "{e}");
        let e = llama3("8.0", "4.0", "4.0").unwrap_err().to_string();
        assert!(e.contains("high_freq_factor"), "{e}");
    }

    #[test]
    fn qwen2_defaults_and_eos_list() {
        let c =
            parse(&format!(r#"{{"model_type":"qwen2", {BASE}, "num_key_value_heads": 2, "eos_token_id": [7, 9]}}"#))
                .unwrap();
        assert!(c.qkv_bias && !c.o_bias);
        assert!(!c.tie_word_embeddings);
        assert_eq!(c.eos_token_id, Some(7));
    }
}
