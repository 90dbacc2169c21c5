//! `llmql info`: what a model folder holds, without building the model.
use anyhow::Result;
use clap::Args;
use llmql_core::weights::StoredDtype;
use llmql_core::ModelSource;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: InfoArgs) -> Result<()> {
    let ck = ModelSource::open(&a.model)?;
    let c = &ck.config;
    let t = &ck.tokenizer;
    let dtype = match ck.stored_dtype() {
        Some(StoredDtype::F32) => "f32",
        Some(StoredDtype::F16) => "f16",
        Some(StoredDtype::BF16) => "bf16",
        None => "unknown",
    };
    let tok = |id: Option<u32>| id.and_then(|i| t.tokenizer.id_to_token(i).map(|s| format!("{s:?} ({i})")));
    let v = serde_json::json!({
        "model": a.model.display().to_string(),
        "family": c.family.name(),
        "parameters": c.parameter_count(),
        "layers": c.num_hidden_layers,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "heads": c.num_attention_heads,
        "kv_heads": c.num_key_value_heads,
        "head_dim": c.head_dim,
        "rope_theta": c.rope_theta,
        "rope_scaling": c.rope_scaling.as_ref().map(|_| "llama3"),
        "tie_word_embeddings": c.tie_word_embeddings,
        "dtype": dtype,
        "vocab_size": c.vocab_size,
        "tokenizer_vocab": t.vocab_size(),
        "bos": tok(t.bos_id),
        "eos": tok(Some(t.eos_id)),
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let params = c.parameter_count() as f64;
        if ck.dir == a.model {
            println!("model       {}", a.model.display());
        } else {
            println!("model       {} ({})", a.model.display(), ck.dir.display());
        }
        println!("family      {}", c.family.name());
        println!("parameters  {:.2}M ({})", params / 1e6, c.parameter_count());
        println!("layers      {}", c.num_hidden_layers);
        println!("hidden      {} (intermediate {})", c.hidden_size, c.intermediate_size);
        println!(
            "heads       {} query / {} key-value, head_dim {}",
            c.num_attention_heads, c.num_key_value_heads, c.head_dim
        );
        println!(
            "rope        theta {}{}",
            c.rope_theta,
            if c.rope_scaling.is_some() { ", llama3 scaling" } else { "" }
        );
        println!("dtype       {dtype} (stored)");
        println!("vocab       {} (tokenizer {})", c.vocab_size, t.vocab_size());
        println!("tied        {}", c.tie_word_embeddings);
        println!("bos         {}", tok(t.bos_id).unwrap_or_else(|| "none added by the tokenizer".into()));
        println!("eos         {}", tok(Some(t.eos_id)).unwrap_or_default());
    }
    Ok(())
}
