//! `llmql orchestrator`: Burn's global collective orchestrator (`burn_collective`), the meeting
//! point of the nodes of a multi-node `train` / `ql-train` run. It only coordinates: tensors go
//! between the nodes directly (each node serves its own on the port of its `--node-address`).
//!
//! What Burn 0.21 allows, and so what is enforced here: its orchestrator server
//! (`burn-communication`'s `WsServer`) always listens on every interface (`0.0.0.0:PORT`) and its
//! protocol carries no credential — anyone who reaches the port can register as a node. It cannot be
//! bound to 127.0.0.1, and a token could not be checked by Burn's code nor sent by Burn's nodes. So
//! llmql does not start it unless asked to listen everywhere in so many words (`--host 0.0.0.0`):
//! by default nothing listens at all. The protection of the port is the network's (a firewall, a
//! private network); see the README ("Hostile input").
use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct OrchestratorArgs {
    /// The port to listen on (the nodes pass --orchestrator ws://THIS_HOST:PORT).
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// The address to listen on. Burn 0.21's orchestrator can only listen on every interface and
    /// authenticates nobody, so the only accepted value is 0.0.0.0, given explicitly; the default
    /// (127.0.0.1) is refused with an explanation.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

/// Checks that `host` is what Burn's orchestrator will really listen on (every interface).
pub fn check_host(host: &str, port: u16) -> Result<()> {
    let ip: std::net::IpAddr = host.parse().with_context(|| format!("--host {host:?}: not an IP address"))?;
    if ip.is_unspecified() {
        return Ok(());
    }
    bail!(
        "--host {host}: Burn 0.21's orchestrator cannot listen on {host} only: it always listens on every interface \
         (0.0.0.0:{port}) and does not authenticate the nodes (its protocol has no token). llmql will not start it \
         behind an address it would not keep. On a trusted network (firewalled port, private network) start it with \
         --host 0.0.0.0; multi-node training is experimental (see the README)."
    )
}

pub fn run(a: OrchestratorArgs) -> Result<()> {
    check_host(&a.host, a.port)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    tracing::warn!(
        "collective orchestrator listening on every interface, port {}, without authentication: anyone who can reach \
         this port can join the run (Ctrl+C to stop)",
        a.port
    );
    rt.block_on(burn_collective::start_global_orchestrator(a.port));
    Ok(())
}
