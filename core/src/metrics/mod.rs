//! Retrieval metrics with the definitions (and the quirks) of ir-measures' default pipeline, which computes
//! them with trec_eval (pytrec-eval-terrier), except `RR@k`, which ir-measures computes with the MS MARCO
//! evaluation script. Values match ir-measures to floating-point rounding (the parity test checks 1e-6).
//!
//! | name (ir-measures) | trec_eval name | one query |
//! |---|---|---|
//! | `nDCG@k`, `nDCG` | `ndcg_cut_k`, `ndcg` | DCG of the top k (gain = grade, grades <= 0 give nothing, discount log2(rank+1)) / DCG of the ideal top k built from all judged documents of the query |
//! | `RR@k` | (MS MARCO `MRR@k`) | 1 / rank of the first document with grade >= rel within the top k, else 0 |
//! | `RR` | `recip_rank` | the same with no cutoff |
//! | `R@k` | `recall_k` | relevant in top k / relevant judged (0 when none is judged relevant) |
//! | `P@k` | `P_k` | relevant in top k / k (k even when fewer were retrieved) |
//! | `AP`, `AP@k` | `map`, `map_cut_k` | sum of precision at each relevant document (within the top k) / relevant judged |
//!
//! Relevant means grade >= `rel` (default 1; `R(rel=2)@100` etc.); unjudged documents are never relevant.
//! nDCG has no `rel`: graded gains are used as they are.
//!
//! **Ranking.** The ranks in a run file are ignored; each query is re-sorted:
//! - trec_eval (every metric but `RR@k`): score descending, where scores are first rounded to `f32`
//!   (trec_eval keeps them as C `float`), ties broken by docid in *decreasing* byte order;
//! - MS MARCO script (`RR@k`): score descending as `f64`, ties by docid in *increasing* order, which is also
//!   the order [`crate::trec::write_run`] writes.
//!
//! So with tied scores `RR@10` and `RR` may see different first documents: that is what ir-measures reports.
//!
//! **Queries.** Run queries without judgments are ignored. Judged queries missing from the run count as 0 in the
//! mean (`include_missing = true`, ir-measures' default and trec_eval's `-c`), or are left out
//! (`include_missing = false`, trec_eval's and pytrec_eval's default). Judged queries with no relevant document
//! count as 0 either way.
pub mod average_precision;
pub mod ndcg;
pub mod precision;
pub mod recall;
pub mod reciprocal_rank;

use crate::trec::{Qrels, Run, RunEntry};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The default metric set of `llmql eval`.
pub const DEFAULT_METRICS: &str = "nDCG@10,RR@10,R@100,R@1000,AP";

/// One metric, named as ir-measures names it (`nDCG@10`, `RR(rel=2)@10`, `R@100`, `P@5`, `AP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Normalised discounted cumulative gain, optionally cut at k.
    NDCG { cutoff: Option<usize> },
    /// Reciprocal rank of the first relevant document, optionally cut at k.
    RR { cutoff: Option<usize>, rel: i32 },
    /// Recall at k.
    Recall { cutoff: usize, rel: i32 },
    /// Precision at k.
    Precision { cutoff: usize, rel: i32 },
    /// Average precision, optionally cut at k (`map_cut_k`).
    AP { cutoff: Option<usize>, rel: i32 },
}

impl Metric {
    /// The relevance threshold of a binary metric (`None` for nDCG).
    pub fn rel(&self) -> Option<i32> {
        match *self {
            Metric::NDCG { .. } => None,
            Metric::RR { rel, .. }
            | Metric::Recall { rel, .. }
            | Metric::Precision { rel, .. }
            | Metric::AP { rel, .. } => Some(rel),
        }
    }

    /// The same metric with relevance threshold `rel` (nDCG is returned unchanged).
    pub fn with_rel(self, rel: i32) -> Metric {
        match self {
            Metric::NDCG { .. } => self,
            Metric::RR { cutoff, .. } => Metric::RR { cutoff, rel },
            Metric::Recall { cutoff, .. } => Metric::Recall { cutoff, rel },
            Metric::Precision { cutoff, .. } => Metric::Precision { cutoff, rel },
            Metric::AP { cutoff, .. } => Metric::AP { cutoff, rel },
        }
    }

    pub fn cutoff(&self) -> Option<usize> {
        match *self {
            Metric::NDCG { cutoff } | Metric::RR { cutoff, .. } | Metric::AP { cutoff, .. } => cutoff,
            Metric::Recall { cutoff, .. } | Metric::Precision { cutoff, .. } => Some(cutoff),
        }
    }

    /// The ir-measures base name: `nDCG`, `RR`, `R`, `P`, `AP`.
    pub fn base_name(&self) -> &'static str {
        match self {
            Metric::NDCG { .. } => "nDCG",
            Metric::RR { .. } => "RR",
            Metric::Recall { .. } => "R",
            Metric::Precision { .. } => "P",
            Metric::AP { .. } => "AP",
        }
    }

    /// Whether this metric ranks with the MS MARCO script's order (see the module docs) rather than trec_eval's.
    pub fn uses_msmarco_order(&self) -> bool {
        matches!(self, Metric::RR { cutoff: Some(_), .. })
    }

    /// The value for one query, from the grades of the ranked documents (`None` = unjudged) in the order this
    /// metric ranks with, and the query's judged grades.
    pub fn compute(&self, ranked: &[Option<i32>], judged: &[i32]) -> f64 {
        match *self {
            Metric::NDCG { cutoff } => ndcg::ndcg(ranked, judged, cutoff),
            Metric::RR { cutoff, rel } => reciprocal_rank::reciprocal_rank(ranked, rel, cutoff),
            Metric::Recall { cutoff, rel } => recall::recall(ranked, num_relevant(judged, rel), rel, cutoff),
            Metric::Precision { cutoff, rel } => precision::precision(ranked, rel, cutoff),
            Metric::AP { cutoff, rel } => {
                average_precision::average_precision(ranked, num_relevant(judged, rel), rel, cutoff)
            }
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base_name())?;
        if let Some(rel) = self.rel() {
            if rel != 1 {
                write!(f, "(rel={rel})")?;
            }
        }
        if let Some(k) = self.cutoff() {
            write!(f, "@{k}")?;
        }
        Ok(())
    }
}

impl FromStr for Metric {
    type Err = String;

    /// Parses ir-measures names: `nDCG@10`, `nDCG`, `RR@10`, `RR`, `R@100`, `P@5`, `AP`, `AP@100`, with an optional
    /// `(rel=N)` before the cutoff on the binary metrics (`R(rel=2)@100`). Aliases `NDCG`, `MRR`, `Recall`,
    /// `Precision`, `MAP`; names are matched case-insensitively.
    fn from_str(s: &str) -> Result<Metric, String> {
        let text = s.trim();
        let bad = |why: &str| format!("invalid metric {text:?}: {why}");
        let (head, cutoff) = match text.rsplit_once('@') {
            Some((h, k)) => {
                let k: usize = k.trim().parse().map_err(|_| bad("the cutoff after '@' must be a positive integer"))?;
                if k == 0 {
                    return Err(bad("the cutoff must be at least 1"));
                }
                (h.trim(), Some(k))
            }
            None => (text, None),
        };
        let (name, rel) = match head.split_once('(') {
            Some((name, params)) => {
                let params = params.strip_suffix(')').ok_or_else(|| bad("parameters must be written `(rel=N)`"))?;
                let mut rel = None;
                for p in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (k, v) = p.split_once('=').ok_or_else(|| bad("parameters must be written `(rel=N)`"))?;
                    match k.trim() {
                        "rel" => {
                            let v: i32 = v.trim().parse().map_err(|_| bad("rel must be an integer"))?;
                            if v < 1 {
                                return Err(bad("rel must be at least 1"));
                            }
                            rel = Some(v);
                        }
                        other => return Err(bad(&format!("unsupported parameter {other:?} (only rel is)"))),
                    }
                }
                (name.trim(), rel)
            }
            None => (head, None),
        };
        let r = rel.unwrap_or(1);
        let metric = match name.to_ascii_lowercase().as_str() {
            "ndcg" => {
                if rel.is_some() {
                    return Err(bad("nDCG has no rel parameter (its gains are the relevance grades)"));
                }
                Metric::NDCG { cutoff }
            }
            "rr" | "mrr" => Metric::RR { cutoff, rel: r },
            "r" | "recall" => {
                Metric::Recall { cutoff: cutoff.ok_or_else(|| bad("recall needs a cutoff, e.g. R@100"))?, rel: r }
            }
            "p" | "precision" => {
                Metric::Precision { cutoff: cutoff.ok_or_else(|| bad("precision needs a cutoff, e.g. P@10"))?, rel: r }
            }
            "ap" | "map" => Metric::AP { cutoff, rel: r },
            _ => return Err(bad("unknown metric (known: nDCG, RR, R, P, AP)")),
        };
        Ok(metric)
    }
}

/// Splits a comma-separated metric list at the commas outside parentheses, trimming and dropping empty items.
pub fn split_metric_list(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

/// Parses a comma-separated metric list (`nDCG@10,RR@10,R(rel=2)@100`).
pub fn parse_metrics(s: &str) -> Result<Vec<Metric>, String> {
    let metrics: Vec<Metric> = split_metric_list(s).into_iter().map(str::parse).collect::<Result<_, _>>()?;
    if metrics.is_empty() {
        return Err("no metrics given".into());
    }
    Ok(metrics)
}

/// The default metric set: nDCG@10, RR@10, R@100, R@1000, AP.
pub fn default_metrics() -> Vec<Metric> {
    parse_metrics(DEFAULT_METRICS).expect("valid defaults")
}

/// Number of judged documents with grade >= `rel`.
pub fn num_relevant(judged: &[i32], rel: i32) -> usize {
    judged.iter().filter(|&&g| g >= rel).count()
}

/// Whether a ranked document's grade makes it relevant at threshold `rel` (unjudged never is).
#[inline]
pub(crate) fn is_rel(grade: Option<i32>, rel: i32) -> bool {
    matches!(grade, Some(g) if g >= rel)
}

/// `-0.0` and `0.0` compare equal in C and Python; NaN (which readers reject) sorts last.
#[inline]
fn norm64(x: f64) -> f64 {
    if x.is_nan() {
        f64::NEG_INFINITY
    } else {
        x + 0.0
    }
}

/// trec_eval's order: score (as `f32`) descending, then docid descending. Returns indices into `entries`.
pub fn trec_eval_order(entries: &[RunEntry]) -> Vec<usize> {
    let keys: Vec<f32> = entries.iter().map(|e| norm64(e.score) as f32 + 0.0).collect();
    let mut idx: Vec<usize> = (0..entries.len()).collect();
    idx.sort_by(|&a, &b| keys[b].total_cmp(&keys[a]).then_with(|| entries[b].docid.cmp(&entries[a].docid)));
    idx
}

/// The MS MARCO script's order as ir-measures feeds it: score (`f64`) descending, then docid ascending.
pub fn msmarco_order(entries: &[RunEntry]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..entries.len()).collect();
    idx.sort_by(|&a, &b| {
        norm64(entries[b].score)
            .total_cmp(&norm64(entries[a].score))
            .then_with(|| entries[a].docid.cmp(&entries[b].docid))
    });
    idx
}

/// One query prepared for scoring: judged grades and the grades of the ranked documents in both orders.
pub struct PreparedQuery {
    judged: Vec<i32>,
    trec: Vec<Option<i32>>,
    msmarco: Option<Vec<Option<i32>>>,
}

impl PreparedQuery {
    /// `with_msmarco`: also build the MS MARCO order (only `RR@k` needs it).
    pub fn new(judgments: &BTreeMap<String, i32>, entries: &[RunEntry], with_msmarco: bool) -> Self {
        let grade = |i: usize| judgments.get(&entries[i].docid).copied();
        PreparedQuery {
            judged: judgments.values().copied().collect(),
            trec: trec_eval_order(entries).into_iter().map(grade).collect(),
            msmarco: with_msmarco.then(|| msmarco_order(entries).into_iter().map(grade).collect()),
        }
    }

    pub fn value(&self, metric: &Metric) -> f64 {
        let ranked = if metric.uses_msmarco_order() {
            self.msmarco.as_ref().expect("PreparedQuery built without the MS MARCO order")
        } else {
            &self.trec
        };
        metric.compute(ranked, &self.judged)
    }
}

/// One metric for one query.
pub fn evaluate_query(metric: &Metric, judgments: &BTreeMap<String, i32>, entries: &[RunEntry]) -> f64 {
    PreparedQuery::new(judgments, entries, metric.uses_msmarco_order()).value(metric)
}

/// Per-query values and means of a set of metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    pub metrics: Vec<Metric>,
    /// qid -> one value per metric (in `metrics` order). Judged queries missing from the run appear (as zeros)
    /// only when they are included.
    pub per_query: BTreeMap<String, Vec<f64>>,
    /// Mean over the queries of `per_query`, one per metric; NaN when there is no query.
    pub means: Vec<f64>,
    /// Queries averaged over.
    pub num_queries: usize,
    /// Judged queries that the run does not retrieve anything for (whether or not they were included).
    pub missing: Vec<String>,
    /// Run queries without any judgment (always ignored).
    pub unjudged: Vec<String>,
}

impl EvalResult {
    /// The mean of `metric`, if it was computed.
    pub fn mean(&self, metric: &Metric) -> Option<f64> {
        self.metrics.iter().position(|m| m == metric).map(|i| self.means[i])
    }

    /// The value of `metric` for query `qid`, if present.
    pub fn value(&self, qid: &str, metric: &Metric) -> Option<f64> {
        let i = self.metrics.iter().position(|m| m == metric)?;
        self.per_query.get(qid).map(|v| v[i])
    }
}

/// Scores `run` against `qrels`. Judged queries that are missing from the run (or have no entries) count as 0 when
/// `include_missing` (ir-measures' default, trec_eval `-c`) and are skipped otherwise; run queries without
/// judgments are ignored.
pub fn evaluate(qrels: &Qrels, run: &Run, metrics: &[Metric], include_missing: bool) -> EvalResult {
    let with_msmarco = metrics.iter().any(Metric::uses_msmarco_order);
    let mut per_query = BTreeMap::new();
    let mut missing = Vec::new();
    for (qid, judgments) in qrels {
        match run.get(qid).filter(|e| !e.is_empty()) {
            Some(entries) => {
                let q = PreparedQuery::new(judgments, entries, with_msmarco);
                per_query.insert(qid.clone(), metrics.iter().map(|m| q.value(m)).collect::<Vec<f64>>());
            }
            None => {
                missing.push(qid.clone());
                if include_missing {
                    per_query.insert(qid.clone(), vec![0.0; metrics.len()]);
                }
            }
        }
    }
    let unjudged = run.keys().filter(|q| !qrels.contains_key(*q)).cloned().collect();
    let n = per_query.len();
    let means = (0..metrics.len())
        .map(|i| if n == 0 { f64::NAN } else { per_query.values().fold(0.0, |a, v| a + v[i]) / n as f64 })
        .collect();
    EvalResult { metrics: metrics.to_vec(), per_query, means, num_queries: n, missing, unjudged }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(docid: &str, score: f64) -> RunEntry {
        RunEntry { docid: docid.into(), score }
    }

    #[test]
    fn names_round_trip() {
        for s in [
            "nDCG@10",
            "nDCG",
            "RR@10",
            "RR",
            "R@100",
            "R@1000",
            "P@5",
            "AP",
            "AP@100",
            "R(rel=2)@100",
            "AP(rel=2)",
            "P(rel=2)@10",
            "RR(rel=2)@10",
            "RR(rel=3)",
        ] {
            let m: Metric = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
        }
        assert_eq!("MRR@10".parse::<Metric>().unwrap().to_string(), "RR@10");
        assert_eq!("MAP".parse::<Metric>().unwrap().to_string(), "AP");
        assert_eq!("NDCG@10".parse::<Metric>().unwrap().to_string(), "nDCG@10");
        assert_eq!("Recall@5".parse::<Metric>().unwrap().to_string(), "R@5");
        assert_eq!("R(rel=1)@5".parse::<Metric>().unwrap().to_string(), "R@5");
        assert_eq!(" ndcg@3 ".parse::<Metric>().unwrap(), Metric::NDCG { cutoff: Some(3) });
    }

    #[test]
    fn bad_names_are_rejected() {
        for s in ["", "nDCG@0", "nDCG@x", "R", "P", "nDCG(rel=2)@10", "RR(rel=0)", "RR(foo=1)", "XYZ@3", "RR(rel=2"] {
            assert!(s.parse::<Metric>().is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn parses_lists_with_parameters() {
        let m = parse_metrics("nDCG@10, R(rel=2)@100,AP").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1], Metric::Recall { cutoff: 100, rel: 2 });
        assert_eq!(default_metrics().iter().map(|m| m.to_string()).collect::<Vec<_>>().join(","), DEFAULT_METRICS);
        assert!(parse_metrics(" , ").is_err());
    }

    #[test]
    fn with_rel_applies_to_binary_metrics_only() {
        assert_eq!("R@100".parse::<Metric>().unwrap().with_rel(2).to_string(), "R(rel=2)@100");
        assert_eq!("nDCG@10".parse::<Metric>().unwrap().with_rel(2).to_string(), "nDCG@10");
    }

    #[test]
    fn trec_eval_order_rounds_to_f32_and_breaks_ties_by_docid_descending() {
        // 1.0000000001 and 1.0 are the same f32: a tie, broken by docid descending (b before a).
        let entries = vec![e("a", 1.0000000001), e("b", 1.0), e("c", 0.5), e("d", 2.0)];
        let order: Vec<&str> = trec_eval_order(&entries).iter().map(|&i| entries[i].docid.as_str()).collect();
        assert_eq!(order, ["d", "b", "a", "c"]);
        let order: Vec<&str> = msmarco_order(&entries).iter().map(|&i| entries[i].docid.as_str()).collect();
        assert_eq!(order, ["d", "a", "b", "c"]);
        // Lexical, not numeric: "9" > "10".
        let entries = vec![e("10", 1.0), e("9", 1.0), e("100", 1.0)];
        let order: Vec<&str> = trec_eval_order(&entries).iter().map(|&i| entries[i].docid.as_str()).collect();
        assert_eq!(order, ["9", "100", "10"]);
    }

    #[test]
    fn rr_and_rr_at_k_see_ties_differently() {
        let judgments: BTreeMap<String, i32> = [("a".to_string(), 1)].into_iter().collect();
        let entries = vec![e("a", 1.0), e("b", 1.0)];
        assert_eq!(evaluate_query(&"RR".parse().unwrap(), &judgments, &entries), 0.5);
        assert_eq!(evaluate_query(&"RR@10".parse().unwrap(), &judgments, &entries), 1.0);
    }

    #[test]
    fn evaluate_handles_missing_and_unjudged_queries() {
        let mut qrels = Qrels::new();
        qrels.insert("q1".into(), [("a".to_string(), 1)].into_iter().collect());
        qrels.insert("q2".into(), [("b".to_string(), 1)].into_iter().collect());
        let mut run = Run::new();
        run.insert("q1".into(), vec![e("a", 1.0)]);
        run.insert("q9".into(), vec![e("a", 1.0)]);
        let metrics = parse_metrics("RR@10,P@1").unwrap();
        let with = evaluate(&qrels, &run, &metrics, true);
        assert_eq!(with.num_queries, 2);
        assert_eq!(with.means, vec![0.5, 0.5]);
        assert_eq!(with.value("q2", &metrics[0]), Some(0.0));
        // No relevant document retrieved: +0.0, not -0.0 (which would print as "-0.0000").
        let nd = evaluate(&qrels, &run, &parse_metrics("nDCG@10").unwrap(), true);
        assert!(nd.value("q2", &nd.metrics[0]).unwrap().is_sign_positive());
        let mut r2 = Run::new();
        r2.insert("q1".into(), vec![e("zz", 1.0)]);
        let nd = evaluate(&qrels, &r2, &parse_metrics("nDCG@10").unwrap(), false);
        assert!(nd.value("q1", &nd.metrics[0]).unwrap().is_sign_positive());
        assert!(nd.means[0].is_sign_positive());
        assert_eq!(with.missing, vec!["q2".to_string()]);
        assert_eq!(with.unjudged, vec!["q9".to_string()]);
        let without = evaluate(&qrels, &run, &metrics, false);
        assert_eq!(without.num_queries, 1);
        assert_eq!(without.mean(&metrics[1]), Some(1.0));
        assert_eq!(without.value("q2", &metrics[0]), None);
        let empty = evaluate(&qrels, &Run::new(), &metrics, false);
        assert!(empty.means[0].is_nan());
    }
}
