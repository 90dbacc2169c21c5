//! Hard-negative mining into Tevatron training data.
//!
//! For each training query (in the queries file's order) with at least one judged-relevant
//! document (grade > 0) in the qrels:
//! - positives: those documents, by grade (descending) then docid;
//! - negatives: the query's run entries (sorted by score, ties by docid) at ranks
//!   `skip_top + 1 ..= depth`, leaving out every judged-relevant document (documents judged
//!   non-relevant, grade <= 0, stay), the first `count` of them.
//!
//! Queries with no negative left (not in the run, or every candidate relevant) are skipped and
//! counted in [`MiningStats`], since a training group needs negatives; queries with fewer than
//! `count` are kept (the trainer samples with replacement) and counted too.
use crate::error::{Error, Result};
use crate::formats::{TevatronExample, TevatronPassage};
use crate::records::TextRecord;
use crate::trec::{sort_entries, Qrels, Run, RunEntry};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Which run entries become negatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiningOptions {
    /// Candidates are ranks up to this (1-based, inclusive).
    pub depth: usize,
    /// The first `skip_top` ranks are never used (they often hold unjudged positives).
    pub skip_top: usize,
    /// At most this many negatives per query.
    pub count: usize,
}

impl MiningOptions {
    pub fn validate(&self) -> Result<()> {
        if self.count == 0 {
            return Err(Error::Other("mining: count must be at least 1".into()));
        }
        if self.depth <= self.skip_top {
            return Err(Error::Other(format!(
                "mining: depth ({}) must exceed skip-top ({}): no rank would be left",
                self.depth, self.skip_top
            )));
        }
        Ok(())
    }
}

/// What happened to the queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MiningStats {
    /// Examples produced.
    pub examples: usize,
    /// Queries of the queries file with no judged-relevant document (not training queries).
    pub no_positive: usize,
    /// Queries with positives but no negative left (absent from the run, or all candidates relevant).
    pub no_negative: usize,
    /// Examples with fewer than `count` negatives.
    pub short: usize,
    /// Queries with judged-relevant documents in the qrels that the queries file lacks.
    pub missing_query_text: usize,
}

/// The judged-relevant documents of a query: grade > 0, by grade (descending) then docid.
pub fn positives(judged: &BTreeMap<String, i32>) -> Vec<String> {
    let mut v: Vec<(&String, i32)> = judged.iter().filter(|(_, &g)| g > 0).map(|(d, &g)| (d, g)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    v.into_iter().map(|(d, _)| d.clone()).collect()
}

/// The negatives of one query from its run entries (any order; sorted here) and its judgments.
pub fn negatives(entries: &[RunEntry], judged: Option<&BTreeMap<String, i32>>, opts: &MiningOptions) -> Vec<String> {
    let mut e = entries.to_vec();
    sort_entries(&mut e);
    e.into_iter()
        .take(opts.depth)
        .skip(opts.skip_top)
        .filter(|x| judged.and_then(|j| j.get(&x.docid)).is_none_or(|&g| g <= 0))
        .take(opts.count)
        .map(|x| x.docid)
        .collect()
}

/// Docids (positives and negatives) and texts of each example, before the corpus is looked up.
#[derive(Debug, Clone, PartialEq)]
pub struct MinedQuery {
    pub query_id: String,
    pub query: String,
    pub positives: Vec<String>,
    pub negatives: Vec<String>,
}

/// Selects positives and negatives for every training query (see the module docs).
pub fn select(
    queries: &[TextRecord],
    qrels: &Qrels,
    run: &Run,
    opts: &MiningOptions,
) -> Result<(Vec<MinedQuery>, MiningStats)> {
    opts.validate()?;
    let mut stats = MiningStats::default();
    let mut out = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for q in queries {
        seen.insert(q.id.as_str());
        let judged = qrels.get(&q.id);
        let pos = judged.map(positives).unwrap_or_default();
        if pos.is_empty() {
            stats.no_positive += 1;
            continue;
        }
        let neg = run.get(&q.id).map(|e| negatives(e, judged, opts)).unwrap_or_default();
        if neg.is_empty() {
            stats.no_negative += 1;
            continue;
        }
        if neg.len() < opts.count {
            stats.short += 1;
        }
        out.push(MinedQuery { query_id: q.id.clone(), query: q.text.clone(), positives: pos, negatives: neg });
    }
    stats.missing_query_text =
        qrels.iter().filter(|(qid, j)| !seen.contains(qid.as_str()) && j.values().any(|&g| g > 0)).count();
    stats.examples = out.len();
    Ok((out, stats))
}

/// The docids the selected examples need from the corpus.
pub fn needed_docids(mined: &[MinedQuery]) -> HashSet<String> {
    mined.iter().flat_map(|m| m.positives.iter().chain(&m.negatives)).cloned().collect()
}

/// Keeps the records of `corpus` whose id is in `needed` (streamed: memory holds only those).
pub fn collect_docs(
    corpus: impl Iterator<Item = Result<TextRecord>>,
    needed: &HashSet<String>,
) -> Result<HashMap<String, TextRecord>> {
    let mut docs = HashMap::with_capacity(needed.len());
    for r in corpus {
        let r = r?;
        if needed.contains(&r.id) {
            docs.insert(r.id.clone(), r);
        }
    }
    Ok(docs)
}

/// Turns selections into Tevatron examples with the passages' titles and texts. A docid missing
/// from `docs` is an error naming it and its query.
pub fn to_examples(mined: &[MinedQuery], docs: &HashMap<String, TextRecord>) -> Result<Vec<TevatronExample>> {
    let passage = |qid: &str, d: &str| -> Result<TevatronPassage> {
        let r =
            docs.get(d).ok_or_else(|| Error::Other(format!("document {d:?} (query {qid:?}) is not in the corpus")))?;
        Ok(TevatronPassage { docid: r.id.clone(), title: r.title.clone().unwrap_or_default(), text: r.text.clone() })
    };
    mined
        .iter()
        .map(|m| {
            Ok(TevatronExample {
                query_id: Some(m.query_id.clone()),
                query: m.query.clone(),
                positive_passages: m.positives.iter().map(|d| passage(&m.query_id, d)).collect::<Result<_>>()?,
                negative_passages: m.negatives.iter().map(|d| passage(&m.query_id, d)).collect::<Result<_>>()?,
            })
        })
        .collect()
}

/// All of it: select, read the needed documents from `corpus` (streamed), build the examples.
pub fn mine(
    queries: &[TextRecord],
    qrels: &Qrels,
    run: &Run,
    corpus: impl Iterator<Item = Result<TextRecord>>,
    opts: &MiningOptions,
) -> Result<(Vec<TevatronExample>, MiningStats)> {
    let (mined, stats) = select(queries, qrels, run, opts)?;
    let docs = collect_docs(corpus, &needed_docids(&mined))?;
    Ok((to_examples(&mined, &docs)?, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(d: &str, s: f64) -> RunEntry {
        RunEntry { docid: d.into(), score: s }
    }

    #[test]
    fn negatives_skip_depth_count_and_exclude_positives() {
        // ranks: 1 a, 2 b, 3 c, 4 d, 5 e, 6 f (given shuffled)
        let entries = vec![e("d", 6.0), e("a", 9.0), e("f", 4.0), e("b", 8.0), e("e", 5.0), e("c", 7.0)];
        let mut j = BTreeMap::new();
        j.insert("c".to_string(), 1);
        j.insert("d".to_string(), 0); // judged non-relevant: allowed
        let o = MiningOptions { depth: 5, skip_top: 1, count: 10 };
        assert_eq!(negatives(&entries, Some(&j), &o), vec!["b", "d", "e"]);
        let o = MiningOptions { depth: 6, skip_top: 0, count: 2 };
        assert_eq!(negatives(&entries, Some(&j), &o), vec!["a", "b"]);
        assert_eq!(negatives(&entries, None, &MiningOptions { depth: 3, skip_top: 2, count: 5 }), vec!["c"]);
        assert!(MiningOptions { depth: 2, skip_top: 2, count: 1 }.validate().is_err());
    }

    #[test]
    fn positives_by_grade() {
        let mut j = BTreeMap::new();
        j.insert("a".to_string(), 1);
        j.insert("b".to_string(), 2);
        j.insert("c".to_string(), 0);
        assert_eq!(positives(&j), vec!["b", "a"]);
    }
}
