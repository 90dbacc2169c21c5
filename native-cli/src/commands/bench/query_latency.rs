//! `llmql bench query-latency`: per-query encode latency, one query at a time (median over N), the
//! native side of the browser benchmark (web-demo/tests/browser-test.mjs --bench).
use anyhow::Result;
use burn::tensor::backend::Backend;
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use llmql_core::records::read_records;
use llmql_core::{Encoder, EncoderOptions, Kind, ModelSource, Template};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct BenchQueryLatencyArgs {
    /// Model (folder, .gguf or hub id), e.g. an export-web folder's model/.
    #[arg(long)]
    pub model: PathBuf,
    /// A PEFT adapter merged into the model first.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Queries (JSON lines with `text`); cycled to reach --queries.
    #[arg(long)]
    pub input: PathBuf,
    /// Number of timed queries (after one untimed warm-up).
    #[arg(long, default_value_t = 50)]
    pub queries: usize,
    #[arg(long, default_value_t = 32)]
    pub max_len: usize,
    #[arg(long, default_value = "llmql")]
    pub template: String,
    #[arg(long, default_value = "flex")]
    pub device: String,
}

struct LatencyTask {
    a: BenchQueryLatencyArgs,
    ckpt: ModelSource,
}

impl BackendTask for LatencyTask {
    type Output = Result<serde_json::Value>;
    fn run<B: Backend>(self, device: B::Device) -> Result<serde_json::Value> {
        use llmql_core::model::LoadOptions;
        let a = &self.a;
        let options = EncoderOptions {
            template: a.template.parse::<Template>().map_err(anyhow::Error::msg)?,
            max_len: a.max_len,
            ..Default::default()
        };
        let load = LoadOptions {
            dtype: burn::tensor::DType::F32,
            lm_head: false,
            host_embeddings: false,
            compute_dtype: None,
        };
        let mut model = self.ckpt.load_model::<B>(load, &device)?;
        if let Some(ad) = &a.adapter {
            model = llmql_core::lora::merge_lora(llmql_core::lora::load_adapter(model, ad)?);
        }
        let enc = Encoder::from_model(model, self.ckpt.tokenizer.clone(), options, None);
        let recs = read_records(&a.input)?;
        anyhow::ensure!(!recs.is_empty(), "{}: no queries", a.input.display());
        let texts: Vec<&str> = (0..a.queries.max(1)).map(|i| recs[i % recs.len()].text.as_str()).collect();
        // Untimed warm-up, then each query alone: tokenize + forward + readback, as the page does.
        enc.embed_ids_to_vec(&[enc.tokenize(Kind::Query, None, texts[0])?]);
        let mut ms = Vec::with_capacity(texts.len());
        for t in &texts {
            let start = Instant::now();
            std::hint::black_box(enc.embed_ids_to_vec(&[enc.tokenize(Kind::Query, None, t)?]));
            ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 { ms[n / 2] } else { (ms[n / 2 - 1] + ms[n / 2]) / 2.0 };
        Ok(serde_json::json!({
            "impl": "llmql-native",
            "device": a.device,
            "queries": n,
            "median_ms": (median * 100.0).round() / 100.0,
            "p90_ms": (ms[((n - 1) as f64 * 0.9) as usize] * 100.0).round() / 100.0,
            "min_ms": (ms[0] * 100.0).round() / 100.0,
            "threads": rayon::current_num_threads(),
        }))
    }
}

pub fn run(a: BenchQueryLatencyArgs) -> Result<serde_json::Value> {
    let device: DeviceSpec = a.device.parse()?;
    let ckpt = ModelSource::open(&a.model)?;
    run_on(&device, LatencyTask { a, ckpt })?
}
