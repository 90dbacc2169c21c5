//! `llmql bench gemm`: the backend's f32 GEMM rate (GFLOP/s) on `[m, k] x [k, n]` matmuls (square
//! by default), the yardstick the other benchmarks' FLOP rates are read against. Same keys as
//! `bench/torch_gemm.py`.
use anyhow::Result;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use clap::Args;
use llmql_backends::{run_on, BackendTask, DeviceSpec};
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct BenchGemmArgs {
    /// Rows of the left operand.
    #[arg(long, default_value_t = 2048)]
    pub m: usize,
    /// Inner dimension (default: m).
    #[arg(long)]
    pub k: Option<usize>,
    /// Columns of the right operand (default: m).
    #[arg(long)]
    pub n: Option<usize>,
    /// Timed repetitions (after one warm-up); the best and the median are reported.
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    #[arg(long, default_value = "flex")]
    pub device: String,
}

struct Task {
    a: BenchGemmArgs,
}

impl BackendTask for Task {
    type Output = Result<serde_json::Value>;
    fn run<B: Backend>(self, device: B::Device) -> Result<serde_json::Value> {
        let a = &self.a;
        let (m, k, n) = (a.m, a.k.unwrap_or(a.m), a.n.unwrap_or(a.m));
        let x = Tensor::<B, 2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<B, 2>::random([k, n], Distribution::Normal(0.0, 1.0), &device);
        let once = || {
            let y = x.clone().matmul(w.clone());
            // Reading one value back waits for the result on asynchronous backends.
            std::hint::black_box(y.slice([0..1, 0..1]).into_data());
        };
        once();
        let mut secs: Vec<f64> = (0..a.reps.max(1))
            .map(|_| {
                let t = Instant::now();
                once();
                t.elapsed().as_secs_f64()
            })
            .collect();
        secs.sort_by(f64::total_cmp);
        let flop = 2.0 * (m * k * n) as f64;
        let median = secs[secs.len() / 2];
        Ok(serde_json::json!({
            "impl": "llmql",
            "m": m,
            "k": k,
            "n": n,
            "reps": secs.len(),
            "best_seconds": secs[0],
            "median_seconds": median,
            "gflops": flop / secs[0] / 1e9,
            "gflops_median": flop / median / 1e9,
            "threads": rayon::current_num_threads(),
            "device": a.device,
        }))
    }
}

pub fn run(a: BenchGemmArgs) -> Result<serde_json::Value> {
    let device: DeviceSpec = a.device.parse()?;
    run_on(&device, Task { a })?
}
