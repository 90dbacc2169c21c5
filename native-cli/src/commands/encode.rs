//! `llmql encode`: JSON lines -> `embeddings.npy` + `ids.txt` + `meta.json`.
use super::input_settings::{self, LengthArgs};
use crate::output::OutputDir;
use crate::progress::bar;
use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use llmql_core::npy::NpyWriter;
use llmql_core::records::{RecordReader, TextRecord};
use llmql_core::{Encoder, EncoderOptions, Kind, ModelSource};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct EncodeArgs {
    /// Model folder (config.json, tokenizer.json, safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// JSON lines: `_id` (or `id`), `text`, optional `title` (BEIR corpus.jsonl / queries.jsonl).
    #[arg(long)]
    pub input: PathBuf,
    /// What the lines are.
    #[arg(long, value_parser = ["query", "passage"])]
    pub kind: String,
    /// Output folder: embeddings.npy, ids.txt, meta.json.
    #[arg(long)]
    pub output: PathBuf,
    /// Maximum tokens per input, including the appended EOS. Default: the length the adapter or
    /// model was trained with for this --kind (its llmql.json), else 64 for queries and 192 for
    /// passages (as `llmql train` and `llmql serve`).
    #[arg(long)]
    pub max_len: Option<usize>,
    #[command(flatten)]
    pub encoder: super::input_settings::EncoderArgs,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// flex | cpu | wgpu | wgpu:N | cuda | cuda:N
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Compute dtype: f32 | f16 | bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// A PEFT LoRA adapter applied on top of --model: a folder or a hub id org/name, in either PEFT
    /// layout (AutoModel/Tevatron or causal LM; decided from its tensor names).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Encode only slice I of N contiguous slices of the input (I counts from 0), writing
    /// embeddings.I.npy, ids.I.txt and meta.I.json, so N processes can split a corpus.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Spread the input over several devices in one command, one shard each (e.g. `cuda:0,cuda:1`):
    /// writes embeddings.I.npy / ids.I.txt / meta.I.json for I = 0..devices, which `llmql search`
    /// reads as one corpus. Overrides --device; not with --shard.
    #[arg(long)]
    pub devices: Option<String>,
}

/// The encoder options: the flags, else what the adapter or model was trained with, else the
/// defaults (`input_settings`).
fn options(a: &EncodeArgs, ckpt: &ModelSource, kind: Kind) -> Result<EncoderOptions> {
    let sources = input_settings::trained_with(&ckpt.dir, a.adapter.as_deref())?;
    let lengths = match kind {
        Kind::Query => LengthArgs { query_max_len: a.max_len, passage_max_len: None },
        Kind::Passage => LengthArgs { query_max_len: None, passage_max_len: a.max_len },
    };
    let what = format!("encode --kind {}", kind.name());
    let s = input_settings::resolve_encoder(&what, &a.encoder, &lengths, &input_settings::encoder_sources(&sources))?;
    Ok(s.options(kind))
}

/// Parses `--shard I/N`.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s.split_once('/').ok_or_else(|| anyhow::anyhow!("invalid --shard {s:?}: expected I/N, e.g. 0/4"))?;
    let i: usize = i.trim().parse().map_err(|_| anyhow::anyhow!("invalid --shard {s:?}: I is not a number"))?;
    let n: usize = n.trim().parse().map_err(|_| anyhow::anyhow!("invalid --shard {s:?}: N is not a number"))?;
    if n == 0 || i >= n {
        bail!("invalid --shard {s:?}: need 0 <= I < N");
    }
    Ok((i, n))
}

/// Records read per chunk: tokenized, length-sorted and batched together, written in input order.
const CHUNK_BATCHES: usize = 16;

struct EncodeTask {
    args: EncodeArgs,
    ckpt: ModelSource,
    options: EncoderOptions,
    kind: Kind,
    /// Records `[start, end)` of the input are this process's slice.
    range: (usize, usize),
    shard: Option<(usize, usize)>,
}

impl BackendTask for EncodeTask {
    type Output = Result<usize>;
    fn run<B: Backend>(self, device: B::Device) -> Result<usize> {
        let a = &self.args;
        let dtype = super::parse_dtype(&a.dtype)?;
        let mut encoder = Encoder::<B>::load(&self.ckpt, self.options, dtype, &device)?;
        if let Some(ad) = &a.adapter {
            encoder.model = llmql_core::lora::load_adapter(encoder.model, ad)?;
        }
        let dim = encoder.dim();
        let mut out = OutputDir::create(&a.output)?;
        let suffix = self.shard.map(|(i, _)| format!(".{i}")).unwrap_or_default();
        let emb_path = out.temp_path(&format!("embeddings{suffix}.npy"));
        let ids_path = out.temp_path(&format!("ids{suffix}.txt"));
        let meta_path = out.temp_path(&format!("meta{suffix}.json"));
        let f = std::fs::File::create(&emb_path).with_context(|| format!("{}: cannot create", emb_path.display()))?;
        let mut npy = NpyWriter::new(BufWriter::new(f), dim)?;
        let mut ids = BufWriter::new(
            std::fs::File::create(&ids_path).with_context(|| format!("{}: cannot create", ids_path.display()))?,
        );
        let (first, end) = self.range;
        let pb = bar((end - first) as u64, "encoding");
        // Stream only this process's slice: memory is bounded by one chunk, not the corpus.
        let mut reader = RecordReader::open(&a.input)?.skip(first).take(end - first);
        let chunk_size = a.batch_size.max(1) * CHUNK_BATCHES;
        let mut written = 0usize;
        loop {
            let chunk: Vec<TextRecord> = reader.by_ref().take(chunk_size).collect::<llmql_core::Result<_>>()?;
            if chunk.is_empty() {
                break;
            }
            let seqs = chunk
                .iter()
                .map(|r| encoder.tokenize(self.kind, r.title.as_deref(), &r.text))
                .collect::<llmql_core::Result<Vec<_>>>()?;
            let rows = encoder.embed_all(&seqs, a.batch_size, |n| pb.inc(n as u64));
            for (r, row) in chunk.iter().zip(&rows) {
                if !row.iter().all(|v| v.is_finite()) {
                    bail!("{}: record {:?} produced a non-finite embedding (try --dtype f32)", a.input.display(), r.id);
                }
                npy.write_row(row)?;
                writeln!(ids, "{}", r.id)?;
            }
            written += chunk.len();
        }
        pb.finish_and_clear();
        encoder.log_truncation(self.kind);
        npy.finish()?;
        ids.flush()?;
        let meta = serde_json::json!({
            "model": a.model.display().to_string(),
            "adapter": a.adapter.as_ref().map(|p| p.display().to_string()),
            "family": self.ckpt.config.family.name(),
            "template": self.options.template.name(),
            "kind": self.kind.name(),
            "max_len": self.options.max_len,
            "truncation": self.options.truncation.name(),
            "dim": dim,
            "count": written,
            "normalized": self.options.normalize,
            "pooling": self.options.pooling.name(),
            "dtype": super::dtype_name(dtype),
            "device": a.device,
            "shard": self.shard.map(|(i, n)| serde_json::json!({"index": i, "count": n, "first_record": first, "end_record": end})),
            "llmql_version": env!("CARGO_PKG_VERSION"),
        });
        std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta)?)?;
        out.commit()?;
        Ok(written)
    }
}

pub fn run(a: EncodeArgs) -> Result<()> {
    if let Some(list) = a.devices.clone() {
        let devices: Vec<String> = list.split(',').map(|d| d.trim().to_string()).filter(|d| !d.is_empty()).collect();
        if a.shard.is_some() {
            bail!("--devices and --shard cannot be combined (--devices makes one shard per device)");
        }
        for d in &devices {
            d.parse::<DeviceSpec>()?;
        }
        let n = devices.len();
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = devices
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let args =
                        EncodeArgs { device: d.clone(), shard: Some(format!("{i}/{n}")), devices: None, ..a.clone() };
                    s.spawn(move || run(args))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("an encoding thread panicked"))))
                .collect()
        });
        return results.into_iter().collect::<Result<Vec<()>>>().map(|_| ());
    }
    let device: DeviceSpec = a.device.parse()?;
    let kind: Kind = a.kind.parse().map_err(anyhow::Error::msg)?;
    super::parse_dtype(&a.dtype)?;
    if a.max_len.is_some_and(|m| m < 2) {
        bail!("--max-len must be at least 2 (one token and the EOS)");
    }
    // Validate the whole input first (cheap), so a bad line fails before any model work.
    let mut count = 0usize;
    for r in RecordReader::open(&a.input)? {
        r?;
        count += 1;
    }
    if count == 0 {
        bail!("{}: no records: the file is empty", a.input.display());
    }
    let ckpt = ModelSource::open(&a.model)?;
    let options = options(&a, &ckpt, kind)?;
    let start = std::time::Instant::now();
    let out = a.output.clone();
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let range = match shard {
        None => (0, count),
        Some((i, n)) => (i * count / n, (i + 1) * count / n),
    };
    if range.0 == range.1 {
        tracing::warn!("shard {:?} of {count} records is empty", a.shard);
    }
    let n = run_on(&device, EncodeTask { args: a, ckpt, options, kind, range, shard })??;
    tracing::info!("encoded {n} texts in {:.1}s into {}", start.elapsed().as_secs_f64(), out.display());
    Ok(())
}
