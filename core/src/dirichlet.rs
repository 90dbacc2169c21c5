//! Word-based query likelihood with Dirichlet smoothing (Zhai & Lafferty, 2001), as a reranker:
//! the classic baseline that LLM-QL's query-likelihood ranking is compared with.
//!
//! `score(q, d) = sum over query tokens w of ln((tf(w, d) + mu * p(w|C)) / (|d| + mu))`, with
//! `p(w|C) = cf(w) / |C|` (collection frequency over total tokens, the whole corpus) and the same
//! analyzer as BM25 ([`crate::bm25::Analyzer`]; `title + " " + text`). A word repeated in the
//! query counts each time. Query words that never occur in the collection (`cf = 0`, so
//! `p(w|C) = 0`) are skipped: they would add `ln 0` to every document alike. A query none of
//! whose words occurs in the collection scores 0 everywhere (its ranking is then by docid).
//!
//! [`rerank`] streams the corpus once (bounded memory: the statistics of the query words and of
//! the candidate documents only), rescoring the top `depth` documents of each query of a run; the
//! output run holds those `depth` documents, reordered, and nothing below them.
use crate::bm25::Analyzer;
use crate::error::{Error, Result};
use crate::formats::record_contents;
use crate::records::TextRecord;
use crate::trec::{sort_entries, Run, RunEntry};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

/// The default `mu`, as in Zhai & Lafferty and Anserini's QLD.
pub const DEFAULT_MU: f64 = 1000.0;

/// Collection statistics of a set of words.
#[derive(Debug, Clone, Default)]
pub struct CollectionStats {
    /// Total tokens in the collection, `|C|`.
    pub total_tokens: u64,
    /// Collection frequency of each tracked word.
    pub cf: HashMap<String, u64>,
}

/// One document's length and the term frequencies of the tracked words it contains.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocStats {
    pub len: u64,
    pub tf: HashMap<String, u64>,
}

impl DocStats {
    /// Counts `tokens`, keeping the frequencies of the words in `keep` (all words when `None`).
    pub fn from_tokens(tokens: &[String], keep: Option<&HashSet<String>>) -> Self {
        let mut tf = HashMap::new();
        for t in tokens {
            if keep.is_none_or(|k| k.contains(t)) {
                *tf.entry(t.clone()).or_insert(0) += 1;
            }
        }
        DocStats { len: tokens.len() as u64, tf }
    }
}

/// The Dirichlet-smoothed query log likelihood of a document (see the module docs).
pub fn score(query_tokens: &[String], doc: &DocStats, stats: &CollectionStats, mu: f64) -> f64 {
    let mut s = 0.0;
    if stats.total_tokens == 0 {
        return s;
    }
    let denom = (doc.len as f64 + mu).ln();
    for w in query_tokens {
        let cf = stats.cf.get(w).copied().unwrap_or(0);
        if cf == 0 {
            continue;
        }
        let p = cf as f64 / stats.total_tokens as f64;
        let tf = doc.tf.get(w).copied().unwrap_or(0) as f64;
        s += (tf + mu * p).ln() - denom;
    }
    s
}

/// Reranks the top `depth` documents of each query of `run` by Dirichlet QL.
///
/// `corpus` is streamed once (records are analysed in parallel batches; `on_doc` is called per
/// record, for progress). Every query of the run must be in `queries`, and every candidate
/// document in the corpus: otherwise an error names the first missing one.
pub fn rerank(
    corpus: impl Iterator<Item = Result<TextRecord>>,
    queries: &[TextRecord],
    run: &Run,
    depth: usize,
    mu: f64,
    analyzer: &Analyzer,
    on_doc: &(dyn Fn() + Sync),
) -> Result<Run> {
    if !(mu.is_finite() && mu > 0.0) {
        return Err(Error::Other(format!("Dirichlet mu must be finite and > 0, got {mu}")));
    }
    // The candidates: each query's top `depth`, in the run's order.
    let mut candidates: Vec<(String, Vec<String>)> = Vec::with_capacity(run.len());
    let mut wanted: HashSet<String> = HashSet::new();
    for (qid, entries) in run {
        let mut e = entries.clone();
        sort_entries(&mut e);
        e.truncate(depth);
        let docs: Vec<String> = e.into_iter().map(|x| x.docid).collect();
        wanted.extend(docs.iter().cloned());
        candidates.push((qid.clone(), docs));
    }
    // The query words.
    let qtext: HashMap<&str, &str> = queries.iter().map(|q| (q.id.as_str(), q.text.as_str())).collect();
    let mut a = analyzer.clone();
    let mut qtokens: HashMap<String, Vec<String>> = HashMap::new();
    for (qid, _) in &candidates {
        let text = qtext
            .get(qid.as_str())
            .ok_or_else(|| Error::Other(format!("query {qid:?} of the run is not in the queries file")))?;
        qtokens.insert(qid.clone(), a.analyze(text));
    }
    let vocab: HashSet<String> = qtokens.values().flatten().cloned().collect();

    // One pass over the corpus.
    let mut stats = CollectionStats { total_tokens: 0, cf: vocab.iter().map(|w| (w.clone(), 0)).collect() };
    let mut docs: HashMap<String, DocStats> = HashMap::with_capacity(wanted.len());
    let mut batch: Vec<TextRecord> = Vec::with_capacity(BATCH);
    let mut corpus = corpus.peekable();
    let mut n_docs = 0usize;
    while corpus.peek().is_some() {
        batch.clear();
        for r in corpus.by_ref().take(BATCH) {
            batch.push(r?);
        }
        n_docs += batch.len();
        let counted: Vec<DocStats> = batch
            .par_iter()
            .map_init(
                || analyzer.clone(),
                |a, r| {
                    let d = DocStats::from_tokens(&a.analyze(&record_contents(r)), Some(&vocab));
                    on_doc();
                    d
                },
            )
            .collect();
        for (r, d) in batch.iter().zip(counted) {
            stats.total_tokens += d.len;
            for (w, c) in &d.tf {
                *stats.cf.get_mut(w).expect("tracked word") += c;
            }
            if wanted.contains(&r.id) {
                docs.insert(r.id.clone(), d);
            }
        }
    }
    tracing::info!(docs = n_docs, tokens = stats.total_tokens, "collection statistics for Dirichlet QL");

    let mut out = Run::new();
    for (qid, cands) in candidates {
        let q = &qtokens[&qid];
        let mut entries = Vec::with_capacity(cands.len());
        for docid in cands {
            let d = docs.get(&docid).ok_or_else(|| {
                Error::Other(format!("document {docid:?} (query {qid:?} of the run) is not in the corpus"))
            })?;
            entries.push(RunEntry { score: score(q, d, &stats, mu), docid });
        }
        sort_entries(&mut entries);
        out.insert(qid, entries);
    }
    Ok(out)
}

const BATCH: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, text: &str) -> TextRecord {
        TextRecord { id: id.into(), title: None, text: text.into() }
    }

    #[test]
    fn rerank_by_hand() {
        // Analysed: d1 = [appl, appl, pie], d2 = [appl, tart, tart, tart]; |C| = 7.
        let corpus = vec![rec("d1", "apple apple pie"), rec("d2", "apple tart tart tart")];
        let queries = vec![rec("q", "apple pie zebra")];
        let mut run = Run::new();
        run.insert(
            "q".into(),
            vec![RunEntry { docid: "d2".into(), score: 9.0 }, RunEntry { docid: "d1".into(), score: 1.0 }],
        );
        let mu = 2.0;
        let out = rerank(corpus.into_iter().map(Ok), &queries, &run, 10, mu, &Analyzer::default(), &|| {}).unwrap();
        let (pa, pp) = (3.0 / 7.0, 1.0 / 7.0);
        let d1 = ((2.0 + mu * pa) / (3.0 + mu)).ln() + ((1.0 + mu * pp) / (3.0 + mu)).ln();
        let d2 = ((1.0 + mu * pa) / (4.0 + mu)).ln() + ((0.0 + mu * pp) / (4.0 + mu)).ln();
        let e = &out["q"];
        assert_eq!(e[0].docid, "d1");
        assert!((e[0].score - d1).abs() < 1e-12);
        assert!((e[1].score - d2).abs() < 1e-12);
        // depth 1 keeps only the run's top document
        let out = rerank(
            vec![rec("d1", "apple apple pie"), rec("d2", "apple tart tart tart")].into_iter().map(Ok),
            &queries,
            &run,
            1,
            mu,
            &Analyzer::default(),
            &|| {},
        )
        .unwrap();
        assert_eq!(out["q"].len(), 1);
        assert_eq!(out["q"][0].docid, "d2");
    }

    #[test]
    fn missing_document_is_an_error() {
        let mut run = Run::new();
        run.insert("q".into(), vec![RunEntry { docid: "nope".into(), score: 1.0 }]);
        let e = rerank(
            vec![rec("d1", "x")].into_iter().map(Ok),
            &[rec("q", "x")],
            &run,
            10,
            1000.0,
            &Analyzer::default(),
            &|| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"nope\""), "{e}");
    }
}
