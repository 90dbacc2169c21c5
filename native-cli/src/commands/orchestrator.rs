//! `llmql orchestrator`: Burn's global collective orchestrator (`burn_collective`), the meeting
//! point of the nodes of a multi-node `train` / `ql-train` run. It only coordinates: tensors go
//! between the nodes directly (each node serves its own on the port of its `--node-address`).
use anyhow::{Context, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct OrchestratorArgs {
    /// The port to listen on (the nodes pass --orchestrator ws://THIS_HOST:PORT).
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

pub fn run(a: OrchestratorArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    tracing::info!("collective orchestrator listening on port {} (Ctrl+C to stop)", a.port);
    rt.block_on(burn_collective::start_global_orchestrator(a.port));
    Ok(())
}
