pub mod bench;
pub mod bm25;
pub mod dirichlet;
pub mod encode;
pub mod eval;
pub mod export_web;
pub mod fuse;
pub mod generate_queries;
pub mod index;
pub mod info;
pub mod input_settings;
pub mod merge_lora;
pub mod mine_negatives;
pub mod orchestrator;
pub mod ql_train;
pub mod quickstart;
pub mod rerank;
pub mod search;
pub mod serve;
pub mod train;
pub mod training_args;

use anyhow::{bail, Result};
use burn::tensor::DType;
use clap::Args;
use llmql_core::train::data_parallel::{BurnCollective, MultiNode};
use llmql_core::truncation::Truncation;

/// `--truncation`, shared by every command that cuts inputs to a length limit (resolved with the
/// other input settings: [`input_settings`]).
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct TruncationArgs {
    /// How an input longer than its length limit is cut: `content` keeps the template's
    /// instruction prefix and suffix and cuts the query or passage text; `reference` keeps the
    /// first tokens of the whole string, as the reference implementation does (for bit-exact
    /// reproduction of released checkpoints). Texts that fit are identical either way. Default:
    /// what the model was trained with (its llmql.json), else content.
    #[arg(long, value_parser = parse_truncation)]
    pub truncation: Option<Truncation>,
}

fn parse_truncation(s: &str) -> std::result::Result<Truncation, String> {
    s.parse()
}

/// Parses `--dtype`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    Ok(match s {
        "f32" | "float32" => DType::F32,
        "f16" | "float16" => DType::F16,
        "bf16" | "bfloat16" => DType::BF16,
        o => bail!("invalid --dtype {o:?}: expected f32, f16 or bf16"),
    })
}

pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "other",
    }
}

/// Runs a training task on one device, or data-parallel on several (`--devices`): one peer per
/// device, each in its own thread with its own copy of the model, joined by Burn's collective
/// all-reduce (see `llmql_core::train::data_parallel`); with `multi_node`, this process is one node
/// of several. Fails if any peer fails.
pub fn run_peers<T, F>(
    devices: &[llmql_backends::DeviceSpec],
    multi_node: Option<&MultiNode>,
    checkpointing: bool,
    make: F,
) -> Result<()>
where
    T: llmql_backends::AutodiffTask<Output = Result<()>> + Send,
    F: Fn(BurnCollective) -> T + Sync,
{
    if let Some(m) = multi_node {
        tracing::warn!("multi-node training is experimental: with Burn 0.21 the nodes can deadlock in a global all-reduce (README, \"Several machines\")");
        tracing::info!(
            "node {} of {}: data parallel over {} devices here, {} in all",
            m.node_rank,
            m.nodes,
            devices.len(),
            devices.len() * m.nodes
        );
    } else if devices.len() > 1 {
        tracing::info!("data parallel over {} devices", devices.len());
    }
    // Burn's collective joins peers of one backend type.
    if devices.iter().any(|d| std::mem::discriminant(d) != std::mem::discriminant(&devices[0])) {
        let list = devices.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
        bail!("--devices {list}: data parallelism needs devices of one backend (all flex, all wgpu or all cuda)");
    }
    let group = BurnCollective::group(devices.len(), multi_node);
    let abort = group[0].aborter();
    // A peer that fails or panics stops the others (instead of leaving them waiting in an all-reduce).
    struct AbortUnlessDone(Option<llmql_core::train::data_parallel::GroupAbort>);
    impl AbortUnlessDone {
        fn disarm(mut self) {
            self.0 = None;
        }
    }
    impl Drop for AbortUnlessDone {
        fn drop(&mut self) {
            if let Some(a) = self.0.take() {
                a.abort();
            }
        }
    }
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = group
            .into_iter()
            .zip(devices)
            .map(|(c, d)| {
                let task = make(c);
                let guard = AbortUnlessDone(Some(abort.clone()));
                s.spawn(move || {
                    let r = llmql_backends::run_autodiff_on(d, checkpointing, task)
                        .map_err(anyhow::Error::from)
                        .and_then(|r| r);
                    if r.is_ok() {
                        guard.disarm();
                    }
                    r
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().map_err(|_| PeerPanicked)).collect::<Vec<_>>()
    })
    .into_iter()
    .map(|r| r.map_err(anyhow::Error::from).and_then(|r| r))
    .collect();
    // The failing peer's own error first (the others only report that a peer failed).
    if let Some(e) = results.iter().position(|r| r.as_ref().is_err_and(|e| e.downcast_ref::<PeerPanicked>().is_none()))
    {
        return results.into_iter().nth(e).unwrap();
    }
    results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
}

/// A training thread panicked (its message is on stderr).
#[derive(Debug)]
struct PeerPanicked;
impl std::fmt::Display for PeerPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a training thread panicked")
    }
}
impl std::error::Error for PeerPanicked {}

/// `--devices a,b,...` (or `--device`) as device specs.
pub fn device_list(device: &str, devices: Option<&str>) -> Result<Vec<llmql_backends::DeviceSpec>> {
    let list = devices.unwrap_or(device);
    let v =
        list.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| d.parse()).collect::<Result<Vec<_>, _>>()?;
    if v.is_empty() {
        bail!("--devices: no device given");
    }
    Ok(v)
}

/// How training loads a model for `--dtype`: with a half-precision dtype, full fine-tuning keeps f32
/// master weights (and f32 AdamW state) and computes in that dtype; a LoRA run keeps the frozen base
/// in that dtype (its adapters are f32 anyway).
pub fn training_load(dtype: DType, lora: bool, lm_head: bool) -> llmql_core::model::LoadOptions {
    let half = dtype != DType::F32;
    llmql_core::model::LoadOptions {
        dtype: if half && !lora { DType::F32 } else { dtype },
        lm_head,
        host_embeddings: false,
        compute_dtype: (half && !lora).then_some(dtype),
    }
}

/// Flags of a multi-node run (`train`, `ql-train`): every node runs the same command with its own
/// `--node-rank`; the nodes meet at `llmql orchestrator`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MultiNodeArgs {
    /// Number of nodes (machines), each running the same command with the same --devices count.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// This node's index, 0..nodes (node 0 logs and saves).
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// The orchestrator's address, e.g. ws://10.0.0.1:3000 (`llmql orchestrator --port 3000` there).
    #[arg(long)]
    pub orchestrator: Option<String>,
    /// This node's address as the others reach it, e.g. ws://10.0.0.2:3001; its port serves this
    /// node's tensors to the others.
    #[arg(long)]
    pub node_address: Option<String>,
}

impl MultiNodeArgs {
    /// `None` for a one-node run; a clear error for an incomplete or inconsistent set of flags.
    pub fn resolve(&self) -> Result<Option<MultiNode>> {
        if self.nodes <= 1 {
            if self.node_rank != 0 || self.orchestrator.is_some() || self.node_address.is_some() {
                bail!("--node-rank, --orchestrator and --node-address need --nodes N with N > 1");
            }
            return Ok(None);
        }
        if self.node_rank >= self.nodes {
            bail!("--node-rank {} is out of range for --nodes {}", self.node_rank, self.nodes);
        }
        let ws = |flag: &str, v: &Option<String>| -> Result<String> {
            let v = v.clone().ok_or_else(|| anyhow::anyhow!("--nodes {} needs {flag} ws://host:port", self.nodes))?;
            if !v.starts_with("ws://") {
                bail!("{flag} {v:?}: expected ws://host:port");
            }
            Ok(v)
        };
        let orchestrator = ws("--orchestrator", &self.orchestrator)?;
        let node_address = ws("--node-address", &self.node_address)?;
        let port = node_address
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .and_then(|hp| hp.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| anyhow::anyhow!("--node-address {node_address:?}: no port (expected ws://host:port)"))?;
        Ok(Some(MultiNode {
            nodes: self.nodes,
            node_rank: self.node_rank,
            orchestrator,
            node_address,
            data_service_port: port,
        }))
    }
}
