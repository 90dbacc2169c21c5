//! llama.cpp GGUF checkpoints, read as a Hugging Face folder would be: metadata -> `config.json`,
//! the embedded vocabulary -> `tokenizer.json`, tensors -> HF names, dequantised to f32 (F16/BF16
//! kept exact) with llama.cpp's q/k row permutation undone.
//!
//! - [`reader`]: the container
//! - [`dequant`]: the block formats (Q4_0 ... Q8_0, the K-quants Q2_K ... Q8_K, IQ4_NL, IQ4_XS)
//! - [`rope`]: `rope_freqs` (Llama 3.x rope scaling) back to `rope_scaling`
//! - [`vocab`]: the tokenizer
pub mod dequant;
pub mod reader;
pub mod rope;
pub mod vocab;

/// llama.cpp's per-frequency rope factors (Llama 3.x rope scaling), read by [`rope`].
pub const ROPE_FREQS: &str = "rope_freqs.weight";

use crate::error::{Error, Result};
pub use reader::{GgmlType, GgufFile, TensorInfo, Value};
use serde_json::json;
use std::collections::HashMap;

/// How an HF tensor is found in a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufTensor {
    pub gguf_name: String,
    /// Undo llama.cpp's rotary row permutation with this many heads.
    pub unpermute_heads: Option<usize>,
}

/// Architectures read from GGUF (`general.architecture`): llama.cpp writes Llama and Mistral
/// checkpoints as `llama` (q/k rows permuted for its rotary layout), Qwen2 as `qwen2` (not permuted).
fn family(g: &GgufFile) -> Result<&'static str> {
    let arch = g.need("general.architecture")?.as_str().unwrap_or("");
    match arch {
        "llama" => Ok("llama"),
        "qwen2" => Ok("qwen2"),
        other => Err(Error::config(
            &g.path,
            format!("GGUF `general.architecture` = {other:?} is not supported (supported: llama, qwen2)"),
        )),
    }
}

/// The `config.json` this file's metadata describes.
pub fn config_json(g: &GgufFile) -> Result<serde_json::Value> {
    let fam = family(g)?;
    let arch = g.need("general.architecture")?.as_str().unwrap().to_string();
    let key = |k: &str| format!("{arch}.{k}");
    let u = |k: &str| g.need_u64(&key(k)).map(|v| v as usize);
    if g.get(&key("expert_count")).and_then(Value::as_u64).unwrap_or(0) > 0 {
        return Err(Error::config(&g.path, "mixture-of-experts GGUF files are not supported"));
    }
    if let Some(kind) = g.get(&key("rope.scaling.type")).and_then(Value::as_str) {
        if kind != "none" {
            return Err(Error::config(
                &g.path,
                format!("GGUF `{}` = {kind:?}: rope scaling from GGUF is not supported", key("rope.scaling.type")),
            ));
        }
    }
    let hidden = u("embedding_length")?;
    let heads = u("attention.head_count")?;
    let kv_heads = g.get(&key("attention.head_count_kv")).and_then(Value::as_u64).map(|v| v as usize).unwrap_or(heads);
    let head_dim = g
        .get(&key("attention.key_length"))
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .unwrap_or(hidden / heads.max(1));
    let vocab = match g.get(&key("vocab_size")).and_then(Value::as_u64) {
        Some(v) => v as usize,
        None => g
            .tensors
            .get("token_embd.weight")
            .map(|t| t.torch_shape()[0])
            .ok_or_else(|| Error::config(&g.path, "no `token_embd.weight` tensor"))?,
    };
    let eps = g.get(&key("attention.layer_norm_rms_epsilon")).and_then(Value::as_f64).ok_or_else(|| {
        Error::config(&g.path, format!("missing GGUF metadata `{}`", key("attention.layer_norm_rms_epsilon")))
    })?;
    // f32 in the file: print it the way it was written (9.999999747e-06 -> 1e-05).
    let eps = format!("{}", eps as f32).parse::<f64>().unwrap_or(eps);
    let theta = g.get(&key("rope.freq_base")).and_then(Value::as_f64).unwrap_or(match fam {
        "qwen2" => 1_000_000.0,
        _ => 10_000.0,
    });
    let theta = format!("{}", theta as f32).parse::<f64>().unwrap_or(theta);
    let mut c = json!({
        "architectures": [if fam == "qwen2" { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" }],
        "model_type": fam,
        "hidden_size": hidden,
        "intermediate_size": u("feed_forward_length")?,
        "num_hidden_layers": u("block_count")?,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "vocab_size": vocab,
        "tie_word_embeddings": !g.tensors.contains_key("output.weight"),
        "torch_dtype": "float32",
    });
    let o = c.as_object_mut().unwrap();
    if let Some(n) = g.get(&key("context_length")).and_then(Value::as_u64) {
        o.insert("max_position_embeddings".into(), json!(n));
    }
    for (name, k) in [("bos_token_id", "tokenizer.ggml.bos_token_id"), ("eos_token_id", "tokenizer.ggml.eos_token_id")]
    {
        if let Some(id) = g.get(k).and_then(Value::as_u64) {
            o.insert(name.into(), json!(id));
        }
    }
    if fam == "llama" && g.tensors.contains_key("blk.0.attn_q.bias") {
        o.insert("attention_bias".into(), json!(true));
    }
    if g.tensors.contains_key(ROPE_FREQS) {
        if let Some(scaling) = rope::llama3_from_rope_freqs(g, theta, head_dim)? {
            o.insert("rope_scaling".into(), scaling);
        }
    }
    Ok(c)
}

/// HF tensor name -> where it is in the file.
pub fn tensor_map(g: &GgufFile) -> Result<HashMap<String, GgufTensor>> {
    let fam = family(g)?;
    let arch = g.need("general.architecture")?.as_str().unwrap().to_string();
    let heads = g.need_u64(&format!("{arch}.attention.head_count"))? as usize;
    let kv_heads =
        g.get(&format!("{arch}.attention.head_count_kv")).and_then(Value::as_u64).map(|v| v as usize).unwrap_or(heads);
    let mut map = HashMap::new();
    // Read into config.json's `rope_scaling` (see [`config_json`]), not a weight.
    for name in g.tensors.keys().filter(|n| n.as_str() != ROPE_FREQS) {
        let plain = |hf: String| (hf, None);
        let (hf, unpermute) = match name.as_str() {
            "token_embd.weight" => plain("model.embed_tokens.weight".into()),
            "output_norm.weight" => plain("model.norm.weight".into()),
            "output.weight" => plain("lm_head.weight".into()),
            n if n.starts_with("blk.") => {
                let rest = &n[4..];
                let (layer, part) = rest.split_once('.').unwrap_or((rest, ""));
                let (module, kind) = part.rsplit_once('.').unwrap_or((part, ""));
                let p = format!("model.layers.{layer}");
                let hf_module = match module {
                    "attn_norm" => "input_layernorm",
                    "ffn_norm" => "post_attention_layernorm",
                    "attn_q" => "self_attn.q_proj",
                    "attn_k" => "self_attn.k_proj",
                    "attn_v" => "self_attn.v_proj",
                    "attn_output" => "self_attn.o_proj",
                    "ffn_gate" => "mlp.gate_proj",
                    "ffn_up" => "mlp.up_proj",
                    "ffn_down" => "mlp.down_proj",
                    _ => {
                        // Reported as an unexpected tensor by the loader.
                        map.insert(n.to_string(), GgufTensor { gguf_name: n.to_string(), unpermute_heads: None });
                        continue;
                    }
                };
                let permute = match (fam, module, kind) {
                    ("llama", "attn_q", _) => Some(heads),
                    ("llama", "attn_k", _) => Some(kv_heads),
                    _ => None,
                };
                (format!("{p}.{hf_module}.{kind}"), permute)
            }
            other => plain(other.to_string()),
        };
        map.insert(hf, GgufTensor { gguf_name: name.clone(), unpermute_heads: unpermute });
    }
    Ok(map)
}

/// Reads one tensor as f32 in its PyTorch shape, undoing the rotary permutation where needed.
pub fn read_tensor(g: &GgufFile, t: &GgufTensor) -> Result<(Vec<f32>, Vec<usize>)> {
    let (info, bytes) = g.tensor_bytes(&t.gguf_name)?;
    let values = dequant::dequantize(info.ggml_type, bytes);
    let shape = info.torch_shape();
    let values = match t.unpermute_heads {
        Some(heads) => unpermute(&values, &shape, heads).ok_or_else(|| Error::Weights {
            path: g.path.clone(),
            message: format!("tensor `{}` of shape {shape:?} cannot be split into {heads} rotary heads", t.gguf_name),
        })?,
        None => values,
    };
    Ok((values, shape))
}

/// llama.cpp stores q/k rows of each head interleaved (row i*2 + j holds HF row j*half + i);
/// this puts them back.
fn unpermute(values: &[f32], shape: &[usize], heads: usize) -> Option<Vec<f32>> {
    let rows = *shape.first()?;
    let cols = shape[1..].iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    if heads == 0 || rows % heads.checked_mul(2)? != 0 || Some(values.len()) != rows.checked_mul(cols) {
        return None;
    }
    let hd = rows / heads;
    let half = hd / 2;
    let mut out = vec![0.0; values.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let src = h * hd + i * 2 + j;
                let dst = h * hd + j * half + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(heads, 2, hd/2, cols).swapaxes(1, 2).reshape(rows, cols)
        let (heads, hd, cols) = (2, 4, 3);
        let rows = heads * hd;
        let orig: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let mut perm = vec![0.0; orig.len()];
        for h in 0..heads {
            for j in 0..2 {
                for i in 0..hd / 2 {
                    let src = h * hd + j * (hd / 2) + i; // [h, j, i]
                    let dst = h * hd + i * 2 + j; // [h, i, j]
                    perm[dst * cols..(dst + 1) * cols].copy_from_slice(&orig[src * cols..(src + 1) * cols]);
                }
            }
        }
        assert_eq!(super::unpermute(&perm, &[rows, cols], heads).unwrap(), orig);
    }
}
