//! The consistency filter for generated queries (InPars, Promptagator): a query written for a
//! passage is kept only if a first-stage retriever, given the query, ranks that passage in its top
//! `k`. Queries the retriever cannot connect to their passage (too generic, off-topic, or
//! degenerate: a repeated phrase, an empty string) are dropped before they become training pairs.
//!
//! Several retrievers' runs may be given (BM25, a dense run, ...): a query is kept when *every* run
//! ranks one of its judged passages within the top `k` (a query missing from a run is dropped).
//! Promptagator filters with its own retriever; InPars keeps the top queries by the generator's
//! own likelihood. Here the rule is the round-trip one, with `k` a parameter, so the caller
//! chooses how strict it is (`k = 1`: the passage must come first).
use crate::trec::{sort_entries, Qrels, Run};
use std::collections::BTreeSet;

/// What the filter kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterOutcome {
    /// Queries (of the qrels) kept, in id order.
    pub kept: BTreeSet<String>,
    /// Queries examined (those with a judged passage).
    pub total: usize,
}

impl FilterOutcome {
    pub fn dropped(&self) -> usize {
        self.total - self.kept.len()
    }
}

/// Keeps the queries of `qrels` one of whose judged (grade > 0) passages every run in `runs` ranks
/// within its top `top_k` (ranks by score, ties by docid, as the metrics order them).
pub fn filter_consistent(qrels: &Qrels, runs: &[&Run], top_k: usize) -> FilterOutcome {
    let mut kept = BTreeSet::new();
    let mut total = 0;
    for (qid, judged) in qrels {
        let positives: Vec<&String> = judged.iter().filter(|(_, &g)| g > 0).map(|(d, _)| d).collect();
        if positives.is_empty() {
            continue;
        }
        total += 1;
        let in_top = |run: &&Run| {
            run.get(qid).is_some_and(|entries| {
                let mut entries = entries.clone();
                sort_entries(&mut entries);
                entries.iter().take(top_k).any(|e| positives.contains(&&e.docid))
            })
        };
        if !runs.is_empty() && runs.iter().all(in_top) {
            kept.insert(qid.clone());
        }
    }
    FilterOutcome { kept, total }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trec::RunEntry;

    fn run(rows: &[(&str, &[(&str, f64)])]) -> Run {
        rows.iter()
            .map(|(q, es)| {
                (q.to_string(), es.iter().map(|(d, s)| RunEntry { docid: d.to_string(), score: *s }).collect())
            })
            .collect()
    }

    fn qrels(rows: &[(&str, &str, i32)]) -> Qrels {
        let mut q = Qrels::new();
        for (qid, d, g) in rows {
            q.entry(qid.to_string()).or_default().insert(d.to_string(), *g);
        }
        q
    }

    #[test]
    fn keeps_a_query_whose_passage_is_in_the_top_k_of_every_run() {
        let qrels = qrels(&[("a", "d1", 1), ("b", "d2", 1), ("c", "d3", 1), ("e", "d5", 0), ("f", "d6", 1)]);
        // a: d1 first. b: d2 third. c: not retrieved. f: missing from the run. Unsorted entries are
        // ranked by score; the tie at 0.5 goes to the smaller docid (d0 before d2).
        let bm25 = run(&[
            ("a", &[("d9", 0.1), ("d1", 2.0)]),
            ("b", &[("d2", 0.5), ("d7", 0.9), ("d0", 0.5)]),
            ("c", &[("d4", 1.0)]),
            ("e", &[("d5", 1.0)]),
        ]);
        let out = filter_consistent(&qrels, &[&bm25], 1);
        assert_eq!(out.kept.iter().map(String::as_str).collect::<Vec<_>>(), ["a"]);
        // e has no positive: not examined.
        assert_eq!((out.total, out.dropped()), (4, 3));
        let out = filter_consistent(&qrels, &[&bm25], 2);
        assert_eq!(out.kept.len(), 1, "d2 is third (tie with d0 lost on docid)");
        let out = filter_consistent(&qrels, &[&bm25], 3);
        assert_eq!(out.kept.iter().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
        // A second run must agree: b's passage is not in its top 3.
        let dense = run(&[("a", &[("d1", 0.9)]), ("b", &[("d7", 0.9), ("d8", 0.8), ("d9", 0.7), ("d2", 0.6)])]);
        let out = filter_consistent(&qrels, &[&bm25, &dense], 3);
        assert_eq!(out.kept.iter().map(String::as_str).collect::<Vec<_>>(), ["a"]);
        // No run: nothing can be checked, nothing kept.
        assert!(filter_consistent(&qrels, &[], 3).kept.is_empty());
    }
}
