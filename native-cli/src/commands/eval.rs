//! `llmql eval`: score a TREC run against qrels with ir-measures' definitions (see `llmql_core::metrics`).
use anyhow::{bail, Context, Result};
use clap::Args;
use llmql_core::metrics::{evaluate, split_metric_list, EvalResult, Metric, DEFAULT_METRICS};
use llmql_core::trec::{read_qrels, read_run};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Relevance judgments: TREC `qid 0 docid relevance` or BEIR tsv `query-id<TAB>corpus-id<TAB>score`
    /// (header optional); detected from the first line.
    #[arg(long)]
    pub qrels: PathBuf,
    /// The run to score: TREC `qid Q0 docid rank score tag` (ranks are ignored; documents are re-sorted by score).
    #[arg(long)]
    pub run: PathBuf,
    /// Comma-separated ir-measures names: nDCG@k, nDCG, RR@k, RR, R@k, P@k, AP, AP@k; binary metrics take an
    /// optional relevance level, e.g. R(rel=2)@1000.
    #[arg(long, default_value = DEFAULT_METRICS)]
    pub metrics: String,
    /// Print JSON keyed by ir-measures names instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also print the value of every metric for every query.
    #[arg(long)]
    pub per_query: bool,
    /// Minimum grade counted as relevant by the binary metrics (RR, R, P, AP) that do not name their own
    /// `(rel=N)`; TREC DL reports recall with 2. nDCG always uses the grades as gains.
    #[arg(long, value_name = "N")]
    pub rel_threshold: Option<i32>,
    /// Count judged queries that the run has no results for as 0 in the means (the default: ir-measures does
    /// this, like trec_eval -c).
    #[arg(long, conflicts_with = "skip_missing")]
    pub include_missing: bool,
    /// Average only over the judged queries the run has results for (trec_eval's and pytrec_eval's default).
    #[arg(long)]
    pub skip_missing: bool,
}

/// The metrics to compute, with `--rel-threshold` applied to binary metrics that do not name a `rel`, duplicates
/// (by ir-measures name) dropped.
pub fn parse_metric_args(list: &str, rel_threshold: Option<i32>) -> Result<Vec<Metric>> {
    if let Some(r) = rel_threshold {
        if r < 1 {
            bail!("--rel-threshold must be at least 1 (got {r})");
        }
    }
    let mut out: Vec<Metric> = Vec::new();
    for item in split_metric_list(list) {
        let mut m: Metric = item.parse().map_err(|e: String| anyhow::anyhow!("--metrics: {e}"))?;
        if let Some(r) = rel_threshold {
            if !item.contains("rel=") {
                m = m.with_rel(r);
            }
        }
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        bail!("--metrics: no metric given");
    }
    Ok(out)
}

pub fn run(a: EvalArgs) -> Result<()> {
    let metrics = parse_metric_args(&a.metrics, a.rel_threshold)?;
    let qrels = read_qrels(&a.qrels).context("cannot read the qrels")?;
    let run = read_run(&a.run).context("cannot read the run")?;
    if !run.keys().any(|q| qrels.contains_key(q)) {
        bail!(
            "{} and {} have no query id in common (run ids look like {:?}, qrels ids like {:?}): wrong qrels for this run?",
            a.run.display(),
            a.qrels.display(),
            run.keys().take(3).collect::<Vec<_>>(),
            qrels.keys().take(3).collect::<Vec<_>>()
        );
    }
    let include_missing = !a.skip_missing;
    let res = evaluate(&qrels, &run, &metrics, include_missing);
    if !res.missing.is_empty() {
        tracing::warn!(
            "{} of {} judged queries have no results in the run ({}{}): {}",
            res.missing.len(),
            qrels.len(),
            res.missing.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            if res.missing.len() > 5 { ", ..." } else { "" },
            if include_missing { "counted as 0; --skip-missing leaves them out" } else { "left out (--skip-missing)" }
        );
    }
    if !res.unjudged.is_empty() {
        tracing::info!("{} run queries have no judgments and are ignored", res.unjudged.len());
    }
    let text = if a.json { to_json(&res, a.per_query) } else { to_table(&res, a.per_query) };
    print!("{text}");
    Ok(())
}

/// `{"nDCG@10": 0.1234, ...}` in metric order (NaN, for no query, as null); with `per_query`, a "per_query" object
/// `{qid: {metric: value}}`.
pub fn to_json(res: &EvalResult, per_query: bool) -> String {
    let num = |v: f64| serde_json::Value::from(v).to_string();
    let key = |s: &str| serde_json::Value::from(s).to_string();
    let mut s = String::from("{\n");
    let mut items: Vec<String> =
        res.metrics.iter().zip(&res.means).map(|(m, &v)| format!("  {}: {}", key(&m.to_string()), num(v))).collect();
    if per_query {
        let mut pq = String::from("  \"per_query\": {");
        for (i, (qid, vals)) in res.per_query.iter().enumerate() {
            let inner: Vec<String> =
                res.metrics.iter().zip(vals).map(|(m, &v)| format!("{}: {}", key(&m.to_string()), num(v))).collect();
            let _ = write!(pq, "{}\n    {}: {{{}}}", if i > 0 { "," } else { "" }, key(qid), inner.join(", "));
        }
        pq.push_str(if res.per_query.is_empty() { "}" } else { "\n  }" });
        items.push(pq);
    }
    s.push_str(&items.join(",\n"));
    s.push_str("\n}\n");
    s
}

fn fmt4(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.4}")
    }
}

/// Aligned text: with `per_query`, a query x metric table first; then `metric  value  queries`.
pub fn to_table(res: &EvalResult, per_query: bool) -> String {
    let names: Vec<String> = res.metrics.iter().map(|m| m.to_string()).collect();
    let mut s = String::new();
    if per_query {
        let qw = res.per_query.keys().map(|q| q.chars().count()).max().unwrap_or(0).max("query".len());
        let _ = write!(s, "{:<qw$}", "query");
        for n in &names {
            let _ = write!(s, "  {:>w$}", n, w = n.len().max(6));
        }
        s.push('\n');
        for (qid, vals) in &res.per_query {
            let _ = write!(s, "{qid:<qw$}");
            for (n, &v) in names.iter().zip(vals) {
                let _ = write!(s, "  {:>w$}", fmt4(v), w = n.len().max(6));
            }
            s.push('\n');
        }
        s.push('\n');
    }
    let mw = names.iter().map(String::len).max().unwrap_or(0).max("metric".len());
    let _ = writeln!(s, "{:<mw$}  {:>7}  {:>7}", "metric", "value", "queries");
    for (n, &v) in names.iter().zip(&res.means) {
        let _ = writeln!(s, "{n:<mw$}  {:>7}  {:>7}", fmt4(v), res.num_queries);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmql_core::trec::{Qrels, Run, RunEntry};

    fn result() -> EvalResult {
        let mut qrels = Qrels::new();
        qrels.insert("q1".into(), [("a".to_string(), 2)].into_iter().collect());
        qrels.insert("q2".into(), [("b".to_string(), 1)].into_iter().collect());
        let mut run = Run::new();
        run.insert("q1".into(), vec![RunEntry { docid: "a".into(), score: 1.0 }]);
        evaluate(&qrels, &run, &parse_metric_args("nDCG@10,RR@10", None).unwrap(), true)
    }

    #[test]
    fn rel_threshold_applies_only_where_rel_is_not_named() {
        let m = parse_metric_args("nDCG@10,R@100,R(rel=3)@10,AP,RR(rel=1)@10", Some(2)).unwrap();
        let names: Vec<String> = m.iter().map(|m| m.to_string()).collect();
        assert_eq!(names, ["nDCG@10", "R(rel=2)@100", "R(rel=3)@10", "AP(rel=2)", "RR@10"]);
        assert!(parse_metric_args("nDCG@10", Some(0)).is_err());
        assert!(parse_metric_args("nDCG@x", None).is_err());
        assert_eq!(parse_metric_args("MRR@10,RR@10", None).unwrap().len(), 1);
    }

    #[test]
    fn json_is_keyed_by_ir_measures_names_in_order() {
        let j = to_json(&result(), false);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["nDCG@10"].as_f64(), Some(0.5));
        assert_eq!(v["RR@10"].as_f64(), Some(0.5));
        assert!(j.find("nDCG@10").unwrap() < j.find("RR@10").unwrap());
        let v: serde_json::Value = serde_json::from_str(&to_json(&result(), true)).unwrap();
        assert_eq!(v["per_query"]["q1"]["RR@10"].as_f64(), Some(1.0));
        assert_eq!(v["per_query"]["q2"]["nDCG@10"].as_f64(), Some(0.0));
    }

    #[test]
    fn table_has_value_and_query_count() {
        let t = to_table(&result(), true);
        assert!(t.contains("nDCG@10   0.5000        2"), "{t}");
        assert!(t.lines().any(|l| l.starts_with("q1") && l.contains("1.0000")), "{t}");
    }
}
