//! Score interpolation of a first-stage run with a reranker's run (`llmql fuse`).
//!
//! The standard linear interpolation of rerankers (e.g. Nogueira & Cho's BERT reranking baselines,
//! Pradeep et al.'s monoT5 "hybrid" runs, and LLM-QL's own QL + dense combinations): per query,
//! each run's scores over the reranked candidates are normalised, then
//! `fused = w * first + (1 - w) * second`. `w = 1` is the first stage's order, `w = 0` the
//! reranker's. Documents the first stage retrieved below the reranked depth keep their order
//! below the fused ones, so recall at the first stage's depth never changes.
//!
//! The weight is a hyperparameter: [`choose_weight`] picks it on queries with judgments that are
//! *not* the evaluation queries (the quickstart holds out training queries for it), by a grid
//! search over `w` in steps of 0.05, keeping the largest `w` among ties (the least change to the
//! first stage).
use crate::metrics::{evaluate, Metric};
use crate::trec::{sort_entries, Qrels, Run, RunEntry};
use std::collections::HashMap;

/// How scores are put on one scale before interpolation (per query, over the reranked candidates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Normalize {
    /// `(s - min) / (max - min)` (0 when all are equal). The default.
    #[default]
    MinMax,
    /// `(s - mean) / sd` (0 when all are equal).
    ZScore,
    /// Raw scores.
    None,
}

impl std::str::FromStr for Normalize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minmax" => Ok(Normalize::MinMax),
            "zscore" => Ok(Normalize::ZScore),
            "none" => Ok(Normalize::None),
            o => Err(format!("unknown normalisation {o:?} (expected minmax, zscore or none)")),
        }
    }
}

fn normalized(scores: &[f64], how: Normalize) -> Vec<f64> {
    let n = scores.len().max(1) as f64;
    match how {
        Normalize::None => scores.to_vec(),
        Normalize::MinMax => {
            let lo = scores.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let range = hi - lo;
            scores.iter().map(|s| if range > 0.0 { (s - lo) / range } else { 0.0 }).collect()
        }
        Normalize::ZScore => {
            let mean = scores.iter().sum::<f64>() / n;
            let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
            scores.iter().map(|s| if sd > 0.0 { (s - mean) / sd } else { 0.0 }).collect()
        }
    }
}

/// Interpolates `second` (the reranker's scores of some of `first`'s documents) into `first`.
/// Per query: the documents both runs scored get `w * N(first) + (1 - w) * N(second)`, in that
/// order; `first`'s other documents follow in their own order (with scores below the fused ones).
/// Documents only `second` scored are ignored; queries `second` lacks keep `first`'s ranking.
pub fn interpolate(first: &Run, second: &Run, weight: f64, how: Normalize) -> Run {
    let mut out = Run::new();
    for (qid, entries) in first {
        let mut entries = entries.clone();
        sort_entries(&mut entries);
        let reranked: HashMap<&str, f64> =
            second.get(qid).map(|e| e.iter().map(|x| (x.docid.as_str(), x.score)).collect()).unwrap_or_default();
        let (both, rest): (Vec<RunEntry>, Vec<RunEntry>) =
            entries.into_iter().partition(|e| reranked.contains_key(e.docid.as_str()));
        let a = normalized(&both.iter().map(|e| e.score).collect::<Vec<_>>(), how);
        let b = normalized(&both.iter().map(|e| reranked[e.docid.as_str()]).collect::<Vec<_>>(), how);
        let mut fused: Vec<RunEntry> = both
            .iter()
            .zip(a.iter().zip(&b))
            .map(|(e, (x, y))| RunEntry { docid: e.docid.clone(), score: weight * x + (1.0 - weight) * y })
            .collect();
        sort_entries(&mut fused);
        // The rest below: strictly decreasing scores under the lowest fused one, in first's order.
        let floor = fused.last().map_or(0.0, |e| e.score);
        let tail =
            rest.into_iter().enumerate().map(|(i, e)| RunEntry { docid: e.docid, score: floor - 1.0 - i as f64 });
        fused.extend(tail);
        out.insert(qid.clone(), fused);
    }
    out
}

/// One point of the weight grid: `w` and the mean metric on the tuning queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightScore {
    pub weight: f64,
    pub score: f64,
}

/// The weight in {0, 0.05, ..., 1} with the best mean `metric` on `qrels`' queries (ties: the
/// largest weight), and the whole grid. Only queries in `qrels` are used.
pub fn choose_weight(
    first: &Run,
    second: &Run,
    qrels: &Qrels,
    metric: &Metric,
    how: Normalize,
) -> (f64, Vec<WeightScore>) {
    let first: Run =
        first.iter().filter(|(q, _)| qrels.contains_key(*q)).map(|(q, e)| (q.clone(), e.clone())).collect();
    let grid: Vec<WeightScore> = (0..=20)
        .map(|i| {
            let weight = i as f64 / 20.0;
            let fused = interpolate(&first, second, weight, how);
            let score = evaluate(qrels, &fused, std::slice::from_ref(metric), true).means[0];
            WeightScore { weight, score }
        })
        .collect();
    let best = grid.iter().fold(grid[0], |b, g| if g.score >= b.score { *g } else { b });
    (best.weight, grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rows: &[(&str, &str, f64)]) -> Run {
        let mut r = Run::new();
        for (q, d, s) in rows {
            r.entry(q.to_string()).or_default().push(RunEntry { docid: d.to_string(), score: *s });
        }
        r
    }

    fn order(r: &Run, q: &str) -> Vec<String> {
        let mut e = r[q].clone();
        sort_entries(&mut e);
        e.into_iter().map(|e| e.docid).collect()
    }

    #[test]
    fn weight_one_is_the_first_run_and_zero_the_reranker_with_the_tail_kept() {
        let first = run(&[("q", "a", 0.9), ("q", "b", 0.8), ("q", "c", 0.7), ("q", "d", 0.1)]);
        let second = run(&[("q", "a", -9.0), ("q", "b", -3.0), ("q", "c", -5.0)]);
        assert_eq!(order(&interpolate(&first, &second, 1.0, Normalize::MinMax), "q"), ["a", "b", "c", "d"]);
        assert_eq!(order(&interpolate(&first, &second, 0.0, Normalize::MinMax), "q"), ["b", "c", "a", "d"]);
        assert_eq!(order(&interpolate(&first, &second, 0.0, Normalize::ZScore), "q"), ["b", "c", "a", "d"]);
        // Half way: a = 0.5*1 + 0.5*0 = 0.5, b = 0.5*0.5 + 0.5*1 = 0.75, c = 0 + 0.5*(4/6).
        let mid = interpolate(&first, &second, 0.5, Normalize::MinMax);
        assert_eq!(order(&mid, "q"), ["b", "a", "c", "d"]);
        let b = mid["q"].iter().find(|e| e.docid == "b").unwrap().score;
        assert!((b - 0.75).abs() < 1e-12);
    }

    #[test]
    fn weight_is_chosen_on_the_tuning_queries_only() {
        // Reranker right on q1 (judged), first stage right on q2 (not judged): choose w = 0.
        let first = run(&[("q1", "x", 2.0), ("q1", "y", 1.0), ("q2", "u", 2.0), ("q2", "v", 1.0)]);
        let second = run(&[("q1", "x", 0.0), ("q1", "y", 1.0), ("q2", "u", 1.0), ("q2", "v", 0.0)]);
        let mut qrels = Qrels::new();
        qrels.entry("q1".into()).or_default().insert("y".into(), 1);
        let m: Metric = "nDCG@10".parse().unwrap();
        let (w, grid) = choose_weight(&first, &second, &qrels, &m, Normalize::MinMax);
        assert_eq!(grid.len(), 21);
        assert_eq!(grid[0].score, 1.0);
        assert!(grid[20].score < 1.0);
        // At 0.5 the two tie (trec_eval's tie order decides), above it the first run wins.
        assert!(w <= 0.5, "{w}");
        // With nothing to gain, ties keep the first stage (w = 1).
        qrels.insert("q1".into(), [("x".to_string(), 1)].into_iter().collect());
        let (w, _) = choose_weight(&first, &first.clone(), &qrels, &m, Normalize::MinMax);
        assert_eq!(w, 1.0);
    }
}
