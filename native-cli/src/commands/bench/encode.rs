//! `llmql bench encode`: passage-encoding throughput through [`Encoder::embed_all`], the loop
//! `llmql encode` runs (length-sorted batches, rows back in input order); same keys as
//! `bench/pytorch_encode.py`.
use anyhow::Result;
use burn::tensor::backend::Backend;
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use llmql_core::encoder::length_sorted_batches;
use llmql_core::records::read_records;
use llmql_core::{Encoder, EncoderOptions, Kind, ModelSource, Template};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct BenchEncodeArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    #[arg(long, default_value = "llmql")]
    pub template: String,
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Only the first N records.
    #[arg(long)]
    pub limit: Option<usize>,
}

struct Task {
    a: BenchEncodeArgs,
    ckpt: ModelSource,
}

impl BackendTask for Task {
    type Output = Result<serde_json::Value>;
    fn run<B: Backend>(self, device: B::Device) -> Result<serde_json::Value> {
        let a = &self.a;
        let dtype = crate::commands::parse_dtype(&a.dtype)?;
        let options = EncoderOptions {
            template: a.template.parse::<Template>().map_err(anyhow::Error::msg)?,
            max_len: a.max_len,
            ..Default::default()
        };
        let enc = Encoder::<B>::load(&self.ckpt, options, dtype, &device)?;
        let mut recs = read_records(&a.input)?;
        if let Some(n) = a.limit {
            recs.truncate(n);
        }
        anyhow::ensure!(!recs.is_empty(), "{}: no records", a.input.display());
        let seqs = recs
            .iter()
            .map(|r| enc.tokenize(Kind::Passage, r.title.as_deref(), &r.text))
            .collect::<llmql_core::Result<Vec<_>>>()?;
        let tokens: usize = seqs.iter().map(Vec::len).sum();
        // Warm-up, not timed: the first (longest) batch (kernel compilation on GPU backends,
        // allocator on CPU).
        let batches = length_sorted_batches(&seqs.iter().map(Vec::len).collect::<Vec<_>>(), a.batch_size);
        let first: Vec<Vec<u32>> = batches[0].iter().map(|&i| seqs[i].clone()).collect();
        enc.embed_ids_to_vec(&first);
        let start = Instant::now();
        std::hint::black_box(enc.embed_all(&seqs, a.batch_size, |_| {}));
        let secs = start.elapsed().as_secs_f64();
        Ok(serde_json::json!({
            "impl": "llmql",
            "passages": recs.len(),
            "tokens": tokens,
            "seconds": secs,
            "passages_per_s": recs.len() as f64 / secs,
            "tokens_per_s": tokens as f64 / secs,
            "threads": rayon::current_num_threads(),
            "batch_size": a.batch_size,
            "max_len": a.max_len,
            "device": a.device,
            "dtype": a.dtype,
            "peak_rss_mib": super::peak_rss_mib(),
        }))
    }
}

pub fn run(a: BenchEncodeArgs) -> Result<serde_json::Value> {
    let device: DeviceSpec = a.device.parse()?;
    let ckpt = ModelSource::open(&a.model)?;
    run_on(&device, Task { a, ckpt })?
}
