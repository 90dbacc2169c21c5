//! `llmql export-web`: everything the browser demo (web-demo/) loads, in one folder:
//!
//! ```text
//! OUTPUT/llmql-web.json            manifest (format "llmql-web/1"): files, encoder settings, corpus size
//! OUTPUT/model/                    config.json, tokenizer files, model.safetensors (encoder weights only,
//!                                  f16 by default: half the download; the browser computes in f32 unless
//!                                  its WebGPU adapter has shader-f16)
//! OUTPUT/adapter/                  the PEFT adapter as given (unless --merge), merged in the browser
//! OUTPUT/corpus/embeddings.npy     the corpus encoded natively with exactly these weights
//! OUTPUT/corpus/ids.txt, meta.json
//! OUTPUT/corpus/passages.jsonl     the passage texts (BEIR lines), for showing results
//! ```
//!
//! The folder is written under a temporary name and put in place at the end by
//! `llmql_core::output::replace_dir` (an existing folder only when llmql wrote it). The manifest
//! names no local path: only the files' names inside the folder and the base names of the sources.
use super::encode::EncodeArgs;
use super::input_settings::{self, EncoderArgs, EncodingModelArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use llmql_core::model::LoadOptions;
use llmql_core::weights::StoredDtype;
use llmql_core::ModelSource;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct ExportWebArgs {
    /// The model and the adapter (shipped as it is, unless --merge), and how the page encodes
    /// queries and this command the corpus.
    #[command(flatten)]
    pub model: EncodingModelArgs,
    /// Corpus: a BEIR folder with corpus.jsonl, or a JSON lines file (`_id`, `text`, optional
    /// `title`). Default with --quickstart: DIR/collection.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// An `llmql quickstart` output folder: takes its trained model, adapter and collection.
    #[arg(long)]
    pub quickstart: Option<PathBuf>,
    /// Output folder (e.g. web-demo/dist/quickstart); an existing one is replaced (atomically) only
    /// when llmql wrote it.
    #[arg(long)]
    pub output: PathBuf,
    /// Stored weight dtype of the exported model: f16 (half the download) or f32.
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32"])]
    pub weights_dtype: String,
    /// Merge the adapter into the exported weights instead of shipping it beside them.
    #[arg(long)]
    pub merge: bool,
    /// Device for encoding the corpus: flex | cpu | wgpu | cuda | cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

struct Resolved {
    model: PathBuf,
    adapter: Option<PathBuf>,
    corpus: PathBuf,
}

fn resolve(a: &ExportWebArgs) -> Result<Resolved> {
    let q = a.quickstart.as_deref();
    let model = match (&a.model.model, q) {
        (Some(m), _) => m.clone(),
        (None, Some(q)) => q.join("ql"),
        (None, None) => bail!("--model is required (or --quickstart DIR for a quickstart's trained model)"),
    };
    let adapter = match (&a.model.adapter, q) {
        (Some(x), _) => Some(llmql_core::lora::resolve_adapter_dir(x)?),
        (None, Some(q)) if q.join("dense/adapter_config.json").exists() => Some(q.join("dense")),
        _ => None,
    };
    let corpus = match (&a.corpus, q) {
        (Some(c), _) => c.clone(),
        (None, Some(q)) => q.join("collection"),
        (None, None) => bail!("--corpus is required (a BEIR folder with corpus.jsonl, or a .jsonl file)"),
    };
    let corpus = if corpus.is_dir() { corpus.join("corpus.jsonl") } else { corpus };
    if !corpus.is_file() {
        bail!("{}: corpus file not found", corpus.display());
    }
    if let Some(ad) = &adapter {
        for f in ["adapter_config.json", "adapter_model.safetensors"] {
            if !ad.join(f).is_file() {
                bail!("{}: not a PEFT adapter folder ({f} missing)", ad.display());
            }
        }
    }
    Ok(Resolved { model, adapter, corpus })
}

struct ExportModel<'a> {
    ck: ModelSource,
    adapter: Option<&'a Path>,
    dest: PathBuf,
    dtype: StoredDtype,
}

impl llmql_backends::BackendTask for ExportModel<'_> {
    type Output = Result<()>;
    fn run<B: burn::tensor::backend::Backend>(self, device: B::Device) -> Result<()> {
        // Encoder weights only (no lm_head): the page encodes, it does not score.
        let load = LoadOptions {
            dtype: burn::tensor::DType::F32,
            lm_head: false,
            host_embeddings: false,
            compute_dtype: None,
        };
        let mut model = self.ck.load_model::<B>(load, &device)?;
        if let Some(ad) = self.adapter {
            model = llmql_core::lora::merge_lora(llmql_core::lora::load_adapter(model, ad)?);
        }
        llmql_core::export::save_hf_folder(&model, &self.ck.source_files(), &self.dest, self.dtype, &mut |_| Ok(()))?;
        Ok(())
    }
}

pub fn run(a: ExportWebArgs) -> Result<()> {
    let r = resolve(&a)?;
    let dtype = match a.weights_dtype.as_str() {
        "f32" => StoredDtype::F32,
        _ => StoredDtype::F16,
    };
    let out = a.output.clone();
    // Refused before any work: an existing --output is replaced only when llmql wrote it.
    llmql_core::output::check_replaceable(&out)?;
    let parent = llmql_core::output::parent_of(&out);
    std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create folder", parent.display()))?;
    llmql_core::output::clean_stale_temps(parent);
    let tmp = llmql_core::output::temp_sibling(&out);
    std::fs::create_dir(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    if let Err(e) = export_into(&a, &r, dtype, &tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    llmql_core::output::replace_dir(&tmp, &out, "export-web")?;
    eprintln!(
        "wrote {} (serve web-demo/ and open index.html?data=<this folder, relative to web-demo/>)",
        out.display()
    );
    Ok(())
}

fn export_into(a: &ExportWebArgs, r: &Resolved, dtype: StoredDtype, tmp: &Path) -> Result<()> {
    let sources = input_settings::trained_with(&r.model, r.adapter.as_deref())?;
    let enc = input_settings::resolve_encoder(
        "export-web",
        &a.model.encoder,
        &a.model.lengths,
        &input_settings::encoder_sources(&sources),
    )?;
    let device: llmql_backends::DeviceSpec = "flex".parse()?;
    let ck = ModelSource::open(&r.model).with_context(|| format!("loading the model {}", r.model.display()))?;
    let model_dir = tmp.join("model");
    let merged = a.merge && r.adapter.is_some();
    tracing::info!("exporting the encoder weights ({})", a.weights_dtype);
    llmql_backends::run_on(
        &device,
        ExportModel { ck, adapter: if merged { r.adapter.as_deref() } else { None }, dest: model_dir.clone(), dtype },
    )??;
    let adapter_dir = match (&r.adapter, merged) {
        (Some(ad), false) => {
            let dir = tmp.join("adapter");
            std::fs::create_dir_all(&dir)?;
            for f in ["adapter_config.json", "adapter_model.safetensors"] {
                std::fs::copy(ad.join(f), dir.join(f)).with_context(|| format!("copying {}", ad.join(f).display()))?;
            }
            Some(dir)
        }
        _ => None,
    };
    // The corpus, encoded with exactly the weights the page will load, and with every setting
    // given (the exported copy of the model holds no llmql.json).
    let corpus_dir = tmp.join("corpus");
    super::encode::run(EncodeArgs {
        model: model_dir.clone(),
        input: r.corpus.clone(),
        kind: "passage".into(),
        output: corpus_dir.clone(),
        max_len: Some(enc.passage_max_len),
        encoder: EncoderArgs {
            template: Some(enc.template),
            truncation: super::TruncationArgs { truncation: Some(enc.truncation) },
            pooling: Some(enc.pooling),
            normalize: enc.normalize,
            no_normalize: !enc.normalize,
        },
        batch_size: a.batch_size,
        device: a.device.clone(),
        dtype: "f32".into(),
        adapter: adapter_dir.clone(),
        shard: None,
        devices: None,
    })
    .context("encoding the corpus")?;
    std::fs::copy(&r.corpus, corpus_dir.join("passages.jsonl"))
        .with_context(|| format!("copying {}", r.corpus.display()))?;
    let meta_path = corpus_dir.join("meta.json");
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path)?)?;
    // encode recorded where it read the model from (this temporary folder): publish the paths
    // relative to corpus/ instead.
    meta["model"] = "../model".into();
    if adapter_dir.is_some() {
        meta["adapter"] = "../adapter".into();
    }
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta)?)?;
    let present = |p: &str| model_dir.join(p).is_file();
    let manifest = serde_json::json!({
        "format": "llmql-web/1",
        "model": {
            "name": display_name(&r.model),
            "config": "model/config.json",
            "tokenizer": "model/tokenizer.json",
            "tokenizer_config": if present("tokenizer_config.json") { Some("model/tokenizer_config.json") } else { None },
            "weights": ["model/model.safetensors"],
            "weights_dtype": a.weights_dtype,
            "adapter": adapter_dir.as_ref().map(|_| serde_json::json!({
                "name": a.model.adapter.as_deref().or(r.adapter.as_deref()).map(display_name),
                "config": "adapter/adapter_config.json",
                "weights": "adapter/adapter_model.safetensors",
            })),
            "adapter_merged": if merged { a.model.adapter.as_deref().or(r.adapter.as_deref()).map(display_name) } else { None },
        },
        "encoder": {
            "template": enc.template.name(),
            "query_max_len": enc.query_max_len,
            "passage_max_len": enc.passage_max_len,
            "truncation": enc.truncation.name(),
            "pooling": enc.pooling.name(),
            "normalize": enc.normalize,
        },
        "corpus": {
            "source": display_name(&r.corpus),
            "embeddings": "corpus/embeddings.npy",
            "ids": "corpus/ids.txt",
            "passages": "corpus/passages.jsonl",
            "count": meta["count"],
            "dim": meta["dim"],
        },
        "llmql_version": env!("CARGO_PKG_VERSION"),
    });
    std::fs::write(tmp.join("llmql-web.json"), serde_json::to_vec_pretty(&manifest)?)?;
    Ok(())
}

/// What the published manifest says about a local source: its last path component (a hub id
/// `org/name` as it is), never the local path it was read from.
fn display_name(p: &Path) -> String {
    let s = p.to_string_lossy();
    if !p.exists() && llmql_core::hub::looks_like_repo_id(&s) {
        return s.to_string();
    }
    p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "model".into())
}
