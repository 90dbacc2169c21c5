//! `llmql bench search`: exact top-K search throughput (queries/s) on seeded random unit vectors;
//! same keys as `bench/numpy_search.py`.
use anyhow::Result;
use burn::tensor::backend::Backend;
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct BenchSearchArgs {
    #[arg(long, default_value_t = 100_000)]
    pub corpus_size: usize,
    #[arg(long, default_value_t = 1024)]
    pub dim: usize,
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    #[arg(long, default_value_t = 100)]
    pub depth: usize,
    #[arg(long, default_value = "flex")]
    pub device: String,
    #[arg(long, default_value_t = 16384)]
    pub block_rows: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Seeded standard-normal-ish rows (sum of uniforms), L2-normalised: same generator as bench/numpy_search.py
/// does not matter for speed; only sizes do.
fn random_unit_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut v = vec![0f32; n * dim];
    for row in v.chunks_mut(dim) {
        for x in row.iter_mut() {
            *x = next() + next() + next();
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

struct SearchBench {
    a: BenchSearchArgs,
}

impl BackendTask for SearchBench {
    type Output = Result<serde_json::Value>;
    fn run<B: Backend>(self, device: B::Device) -> Result<serde_json::Value> {
        use llmql_core::search::{Embeddings, ExactSearch};
        let a = &self.a;
        let corpus = Embeddings {
            ids: (0..a.corpus_size).map(|i| format!("d{i}")).collect(),
            values: random_unit_rows(a.corpus_size, a.dim, a.seed),
            dim: a.dim,
        };
        let queries = Embeddings {
            ids: (0..a.queries).map(|i| format!("q{i}")).collect(),
            values: random_unit_rows(a.queries, a.dim, a.seed + 1),
            dim: a.dim,
        };
        // Warm-up on a small slice (kernel compilation on GPU backends).
        let warm =
            Embeddings { ids: corpus.ids[..16].to_vec(), values: corpus.values[..16 * a.dim].to_vec(), dim: a.dim };
        let mut w = ExactSearch::<B>::new(&queries, a.depth, &device);
        w.add(&warm)?;
        let start = Instant::now();
        let mut s = ExactSearch::<B>::new(&queries, a.depth, &device);
        s.block_rows = a.block_rows;
        s.add(&corpus)?;
        let run = s.finish();
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(&run);
        Ok(serde_json::json!({
            "impl": "llmql",
            "corpus_size": a.corpus_size,
            "dim": a.dim,
            "queries": a.queries,
            "depth": a.depth,
            "seconds": secs,
            "queries_per_s": a.queries as f64 / secs,
            "threads": rayon::current_num_threads(),
            "device": a.device,
        }))
    }
}

pub fn run(a: BenchSearchArgs) -> Result<serde_json::Value> {
    let device: DeviceSpec = a.device.parse()?;
    run_on(&device, SearchBench { a })?
}
