//! `llmql bench serve`: load on a running `llmql serve`: K clients, each sending one request at a
//! time (one query per request) for a fixed time; requests/s, latency percentiles, errors, and
//! the server's resident memory (its `/metrics`) at the start and the end.
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct BenchServeArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// How long to send requests, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// embeddings (POST /v1/embeddings, one query) or search (POST /search, k 10).
    #[arg(long, default_value = "embeddings", value_parser = ["embeddings", "search"])]
    pub endpoint: String,
    /// Queries (JSON lines with `text`) sent in turn; default: a built-in list.
    #[arg(long)]
    pub queries: Option<PathBuf>,
}

const BUILT_IN: &[&str] = &[
    "how do bees make honey",
    "what causes the seasons on earth",
    "who invented the printing press",
    "why is the sky blue",
    "how does a vaccine train the immune system",
    "what is the capital of australia",
    "how do plants turn sunlight into sugar",
    "when did the roman empire fall",
];

/// `llmql_process_resident_memory_bytes` from the server's /metrics, in MiB.
fn server_rss_mib(agent: &ureq::Agent, url: &str) -> Result<f64> {
    let text = agent.get(&format!("{url}/metrics")).call().context("GET /metrics")?.into_string()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("llmql_process_resident_memory_bytes "))
        .context("/metrics has no llmql_process_resident_memory_bytes")?;
    Ok(line.rsplit(' ').next().unwrap_or("0").parse::<f64>()? / (1 << 20) as f64)
}

pub fn run(a: BenchServeArgs) -> Result<serde_json::Value> {
    if a.clients == 0 || a.seconds <= 0.0 {
        bail!("--clients and --seconds must be positive");
    }
    let url = a.url.trim_end_matches('/').to_string();
    let queries: Vec<String> = match &a.queries {
        None => BUILT_IN.iter().map(|s| s.to_string()).collect(),
        Some(p) => {
            llmql_core::records::RecordReader::open(p)?.map(|r| r.map(|r| r.text)).collect::<llmql_core::Result<_>>()?
        }
    };
    if queries.is_empty() {
        bail!("no queries");
    }
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
    let health = agent
        .get(&format!("{url}/health"))
        .call()
        .with_context(|| format!("{url}/health: is `llmql serve` running?"))?
        .into_string()?;
    let health: serde_json::Value = serde_json::from_str(&health)?;
    // Warm-up: one request per client's worth, not timed.
    let body = |q: &str| match a.endpoint.as_str() {
        "search" => serde_json::json!({"query": q, "k": 10}).to_string(),
        _ => serde_json::json!({"input": q}).to_string(),
    };
    let path = if a.endpoint == "search" { "/search" } else { "/v1/embeddings" };
    for q in queries.iter().take(a.clients.max(2)) {
        agent
            .post(&format!("{url}{path}"))
            .set("content-type", "application/json")
            .send_string(&body(q))
            .context("warm-up request")?;
    }
    let rss_start = server_rss_mib(&agent, &url)?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
    let start = Instant::now();
    let results: Vec<(Vec<f64>, Vec<String>)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..a.clients)
            .map(|c| {
                let (agent, url, queries, body) = (agent.clone(), &url, &queries, &body);
                sc.spawn(move || {
                    let mut lat = Vec::new();
                    let mut errors = Vec::new();
                    let mut i = c;
                    while Instant::now() < deadline {
                        let q = &queries[i % queries.len()];
                        i += a.clients;
                        let t = Instant::now();
                        match agent
                            .post(&format!("{url}{path}"))
                            .set("content-type", "application/json")
                            .send_string(&body(q))
                        {
                            Ok(r) if r.status() == 200 => {
                                let _ = r.into_string();
                                lat.push(t.elapsed().as_secs_f64() * 1e3);
                            }
                            Ok(r) => errors.push(format!("HTTP {}", r.status())),
                            Err(e) => errors.push(e.to_string()),
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let rss_end = server_rss_mib(&agent, &url)?;
    let mut lat: Vec<f64> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let errors: Vec<String> = results.iter().flat_map(|r| r.1.iter().cloned()).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(f64::NAN);
    Ok(serde_json::json!({
        "bench": "serve",
        "endpoint": path,
        "model": health["model"], "adapter": health["adapter"], "index": health["index"],
        "clients": a.clients,
        "seconds": secs,
        "requests": lat.len(),
        "requests_per_s": lat.len() as f64 / secs,
        "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "max_ms": lat.last(),
        "errors": errors.len(),
        "first_errors": errors.iter().take(3).collect::<Vec<_>>(),
        "server_rss_mib": {"start": rss_start, "end": rss_end},
    }))
}
