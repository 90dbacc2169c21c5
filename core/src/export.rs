//! Writing a model back as a Hugging Face folder (config.json, model.safetensors with HF names and
//! layouts, tokenizer files) that transformers and `llmql encode` load directly. Written into a
//! temporary folder and renamed into place, so a folder that exists is complete.
use crate::error::{Error, Result};
use crate::model::{DecoderModel, Linear};
use crate::weights::StoredDtype;
use burn::tensor::{backend::Backend, DType, Tensor};
use safetensors::tensor::{Dtype as StDtype, View};
use std::borrow::Cow;
use std::path::Path;

/// An owned tensor in safetensors' byte layout.
pub struct HostTensor {
    pub dtype: StDtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl View for &HostTensor {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Converts a tensor to host bytes in `dtype`.
pub fn to_host<B: Backend, const D: usize>(t: Tensor<B, D>, dtype: StoredDtype) -> HostTensor {
    let shape = t.dims().to_vec();
    let values: Vec<f32> = t.cast(DType::F32).into_data().convert::<f32>().to_vec().expect("f32");
    let (dtype, bytes) = match dtype {
        StoredDtype::F32 => (StDtype::F32, values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        StoredDtype::F16 => (StDtype::F16, values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()),
        StoredDtype::BF16 => {
            (StDtype::BF16, values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect())
        }
    };
    HostTensor { dtype, shape, bytes }
}

fn linear<B: Backend>(out: &mut Vec<(String, HostTensor)>, name: &str, l: &Linear<B>, dt: StoredDtype) {
    // A LoRA adapter is merged: W + s·A·B.
    let w = match &l.lora {
        Some(ad) => l.weight.val() + ad.delta(),
        None => l.weight.val(),
    };
    out.push((format!("{name}.weight"), to_host(w.transpose(), dt)));
    if let Some(b) = &l.bias {
        out.push((format!("{name}.bias"), to_host(b.val(), dt)));
    }
}

/// Every weight of the model under its HF name, in HF layout (`[out, in]` for linear weights).
pub fn hf_tensors<B: Backend>(model: &DecoderModel<B>, dt: StoredDtype) -> Vec<(String, HostTensor)> {
    let mut out = Vec::new();
    out.push(("model.embed_tokens.weight".to_string(), to_host(model.embed_tokens.val(), dt)));
    for (i, l) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        out.push((format!("{p}.input_layernorm.weight"), to_host(l.input_layernorm.weight.val(), dt)));
        out.push((
            format!("{p}.post_attention_layernorm.weight"),
            to_host(l.post_attention_layernorm.weight.val(), dt),
        ));
        let a = &l.self_attn;
        linear(&mut out, &format!("{p}.self_attn.q_proj"), &a.q_proj, dt);
        linear(&mut out, &format!("{p}.self_attn.k_proj"), &a.k_proj, dt);
        linear(&mut out, &format!("{p}.self_attn.v_proj"), &a.v_proj, dt);
        linear(&mut out, &format!("{p}.self_attn.o_proj"), &a.o_proj, dt);
        linear(&mut out, &format!("{p}.mlp.gate_proj"), &l.mlp.gate_proj, dt);
        linear(&mut out, &format!("{p}.mlp.up_proj"), &l.mlp.up_proj, dt);
        linear(&mut out, &format!("{p}.mlp.down_proj"), &l.mlp.down_proj, dt);
    }
    out.push(("model.norm.weight".to_string(), to_host(model.norm.weight.val(), dt)));
    if let Some(head) = &model.lm_head {
        linear(&mut out, "lm_head", head, dt);
    }
    out
}

/// Saves a complete HF folder at `dest` atomically: everything is written into a temporary folder
/// beside it and put in place by [`crate::output::replace_dir`] (an existing `dest` is replaced
/// only when llmql wrote it, and only once the new folder is complete). `extra` writes more files
/// into the (temporary) folder (e.g. training state).
pub fn save_hf_folder<B: Backend>(
    model: &DecoderModel<B>,
    source: &crate::model_source::SourceFiles,
    dest: &Path,
    dtype: StoredDtype,
    extra: &mut dyn FnMut(&Path) -> Result<()>,
) -> Result<()> {
    crate::output::check_replaceable(dest)?;
    let parent = crate::output::parent_of(dest);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    crate::output::clean_stale_temps(parent);
    let tmp = crate::output::temp_sibling(dest);
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = (|| -> Result<()> {
        let mut config = model.config.raw.clone();
        if let Some(o) = config.as_object_mut() {
            let name = match dtype {
                StoredDtype::F32 => "float32",
                StoredDtype::F16 => "float16",
                StoredDtype::BF16 => "bfloat16",
            };
            if o.contains_key("dtype") || !o.contains_key("torch_dtype") {
                o.insert("dtype".into(), name.into());
            }
            if o.contains_key("torch_dtype") {
                o.insert("torch_dtype".into(), name.into());
            }
        }
        let cpath = tmp.join("config.json");
        std::fs::write(&cpath, serde_json::to_vec_pretty(&config).expect("json")).map_err(|e| Error::io(&cpath, e))?;
        let tensors = hf_tensors(model, dtype);
        let wpath = tmp.join("model.safetensors");
        let mut meta = std::collections::HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        safetensors::tensor::serialize_to_file(tensors.iter().map(|(n, t)| (n.clone(), t)), Some(meta), &wpath)
            .map_err(|e| Error::Weights { path: wpath.clone(), message: e.to_string() })?;
        source.write_into(&tmp)?;
        extra(&tmp)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    crate::output::replace_dir(&tmp, dest, "hf-model")
}
