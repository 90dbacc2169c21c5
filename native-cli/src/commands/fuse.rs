//! `llmql fuse`: interpolate a first-stage run with a reranker's run (see `llmql_core::fusion`),
//! with a fixed weight or one chosen on tuning queries' judgments (never the evaluation queries').
use anyhow::{bail, Result};
use clap::Args;
use llmql_core::fusion::{choose_weight, interpolate, Normalize};
use llmql_core::metrics::Metric;
use llmql_core::trec::{read_qrels, read_run, write_run};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct FuseArgs {
    /// The first-stage run (e.g. dense retrieval); its documents below the reranked depth keep
    /// their order at the bottom.
    #[arg(long)]
    pub first: PathBuf,
    /// The reranker's run over (some of) the first run's documents (e.g. `llmql rerank`).
    #[arg(long)]
    pub second: PathBuf,
    /// Weight of the first run: fused = w * first + (1 - w) * second, after normalisation.
    #[arg(long, conflicts_with = "tune_qrels")]
    pub weight: Option<f64>,
    /// Choose the weight on these judged queries (grid 0, 0.05, ..., 1; ties keep the larger
    /// weight). Use held-out training or dev queries, never the test queries.
    #[arg(long)]
    pub tune_qrels: Option<PathBuf>,
    /// The measure the weight is chosen by.
    #[arg(long, default_value = "nDCG@10")]
    pub tune_metric: String,
    /// Per-query score normalisation before interpolation: minmax | zscore | none.
    #[arg(long, default_value = "minmax")]
    pub normalize: String,
    #[arg(long)]
    pub output: PathBuf,
    /// Also write the chosen weight and the tuning grid here (JSON).
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[arg(long, default_value = "llmql-fused")]
    pub tag: String,
}

pub fn run(a: FuseArgs) -> Result<()> {
    let how: Normalize = a.normalize.parse().map_err(anyhow::Error::msg)?;
    let first = read_run(&a.first)?;
    let second = read_run(&a.second)?;
    let (weight, grid, tuned_on) = match (a.weight, &a.tune_qrels) {
        (Some(w), _) => {
            if !(0.0..=1.0).contains(&w) {
                bail!("--weight must be in [0, 1], not {w}");
            }
            (w, Vec::new(), None)
        }
        (None, Some(q)) => {
            let qrels = read_qrels(q)?;
            let metric: Metric = a.tune_metric.parse().map_err(|e| anyhow::anyhow!("--tune-metric: {e}"))?;
            let judged = qrels.keys().filter(|q| first.contains_key(*q)).count();
            if judged == 0 {
                bail!(
                    "{}: none of its queries is in {}: nothing to choose the weight on",
                    q.display(),
                    a.first.display()
                );
            }
            let (w, grid) = choose_weight(&first, &second, &qrels, &metric, how);
            let line = grid.iter().map(|g| format!("{:.2}:{:.4}", g.weight, g.score)).collect::<Vec<_>>().join(" ");
            tracing::info!(
                "weight of the first run chosen on {judged} queries of {}: {w:.2} ({} by weight: {line})",
                q.display(),
                a.tune_metric
            );
            (w, grid, Some((q.display().to_string(), judged)))
        }
        (None, None) => bail!("give --weight W, or --tune-qrels QRELS to choose it on held-out judged queries"),
    };
    let fused = interpolate(&first, &second, weight, how);
    write_run(&a.output, &fused, &a.tag)?;
    if let Some(r) = &a.report {
        let doc = serde_json::json!({
            "first": a.first.display().to_string(),
            "second": a.second.display().to_string(),
            "weight": weight,
            "normalize": a.normalize,
            "tuned_on": tuned_on.as_ref().map(|(q, n)| serde_json::json!({"qrels": q, "queries": n, "metric": a.tune_metric})),
            "grid": grid.iter().map(|g| serde_json::json!({"weight": g.weight, "score": g.score})).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec_pretty(&doc)?;
        llmql_core::formats::write_atomic(r, |w| std::io::Write::write_all(w, &bytes))?;
    }
    tracing::info!(
        "fused with weight {weight:.2} (first) / {:.2} (second): wrote {}",
        1.0 - weight,
        a.output.display()
    );
    Ok(())
}
