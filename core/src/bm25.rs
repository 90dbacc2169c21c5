//! BM25 over a [tantivy](https://docs.rs/tantivy) inverted index, with configurable k1 and b.
//!
//! # What is tantivy's and what is ours
//! tantivy 0.27 hard-codes k1 = 1.2, b = 0.75 in its `Bm25Weight` and quantises document lengths
//! to one byte ("fieldnorms": exact up to about 40 tokens, then coarser). So tantivy builds and
//! stores the index (term dictionary and postings with term frequencies, in RAM or in a temporary
//! folder), and this module scores it itself:
//! - the text is analysed here ([`Analyzer`]) and handed to tantivy pre-tokenised, so each
//!   document's exact length (number of indexed tokens) is known and kept, unquantised;
//! - for each query term, the postings of every segment are walked (doc, tf) and
//!   `qtf * idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))` is accumulated per document, with
//!   `idf = ln(1 + (N - df + 0.5) / (df + 0.5))`. This is Lucene's (hence Anserini's) BM25:
//!   no `(k1 + 1)` factor in the numerator (the same ranking as the textbook form, scores lower by
//!   that factor), `N` = documents with at least one token, `avgdl` = tokens / `N`, and a query
//!   is a bag of words: a term repeated in the query counts `qtf` times (Anserini's
//!   bag-of-words query boosts a term by its count). Scores are f64.
//!
//! Differences from Anserini that remain: Lucene stores lengths quantised (SmallFloat), we use
//! exact ones; the analyzer (below) is close to, not identical with, Lucene's EnglishAnalyzer.
//!
//! # The analyzer
//! tantivy's `SimpleTokenizer` (splits on every non-alphanumeric character, Unicode-aware), after
//! removing English possessive `'s` / `’s` at word ends; tokens of 256 bytes or more dropped;
//! lowercased; Lucene's 33 English stop words removed ([`ENGLISH_STOPWORDS`], the set Anserini
//! uses); Snowball English (Porter2) stemming (tantivy's `Stemmer`; Anserini uses the original
//! Porter stemmer: a few stems differ). Lucene's StandardTokenizer keeps `don't` or `3.5` as one
//! token; here they split. Stop words and stemming can be turned off ([`AnalyzerOptions`]).
//! The document text indexed is `title + " " + text` ([`crate::formats::record_contents`]).
use crate::error::{Error, Result};
use crate::formats::record_contents;
use crate::records::TextRecord;
use crate::trec::{Run, RunEntry};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;
use tantivy::postings::Postings;
use tantivy::schema::{Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    Language, LowerCaser, PreTokenizedString, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    Token,
};
use tantivy::{DocSet, Index, IndexWriter, InvertedIndexReader, TantivyDocument, Term, TERMINATED};

/// Lucene's `EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`, the stop words of Anserini's default analyzer.
pub const ENGLISH_STOPWORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
];

/// Tokens of this many bytes or more are dropped (Lucene's StandardTokenizer caps at 255 chars).
pub const MAX_TOKEN_BYTES: usize = 256;

const TOKENIZER_NAME: &str = "llmql_en";

fn tv(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("tantivy: {e}"))
}

/// What the analyzer does besides tokenising and lowercasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyzerOptions {
    /// Remove [`ENGLISH_STOPWORDS`].
    pub stopwords: bool,
    /// Snowball English (Porter2) stemming.
    pub stem: bool,
}

impl Default for AnalyzerOptions {
    fn default() -> Self {
        Self { stopwords: true, stem: true }
    }
}

/// The text analyzer shared by BM25 and Dirichlet QL (see the module docs). Cheap to clone;
/// one per thread (tantivy's analyzers take `&mut self`).
#[derive(Clone)]
pub struct Analyzer {
    inner: TextAnalyzer,
    options: AnalyzerOptions,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new(AnalyzerOptions::default())
    }
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer").field("options", &self.options).finish()
    }
}

impl Analyzer {
    pub fn new(options: AnalyzerOptions) -> Self {
        let mut b = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
            .filter(LowerCaser)
            .dynamic();
        if options.stopwords {
            b = b.filter_dynamic(StopWordFilter::remove(ENGLISH_STOPWORDS.iter().map(|s| s.to_string())));
        }
        if options.stem {
            b = b.filter_dynamic(Stemmer::new(Language::English));
        }
        Self { inner: b.build(), options }
    }

    pub fn options(&self) -> AnalyzerOptions {
        self.options
    }

    /// The indexed tokens of `text`, in order (repeats kept).
    pub fn analyze(&mut self, text: &str) -> Vec<String> {
        let text = strip_possessives(text);
        let mut out = Vec::new();
        let mut ts = self.inner.token_stream(&text);
        while ts.advance() {
            out.push(ts.token().text.clone());
        }
        out
    }
}

/// Removes `'s` / `’s` (either case of `s`) that ends a word: `John's` -> `John`, `it's` -> `it`.
fn strip_possessives(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\'', '\u{2019}']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if (c == '\'' || c == '\u{2019}')
            && i > 0
            && chars[i - 1].is_alphanumeric()
            && matches!(chars.get(i + 1), Some('s') | Some('S'))
            && !chars.get(i + 2).is_some_and(|n| n.is_alphanumeric())
        {
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// BM25 parameters; the defaults are Anserini's MS MARCO passage settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25Params {
    pub k1: f64,
    pub b: f64,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Self { k1: 0.9, b: 0.4 }
    }
}

impl Bm25Params {
    pub fn validate(&self) -> Result<()> {
        if !(self.k1.is_finite() && self.k1 >= 0.0) {
            return Err(Error::Other(format!("BM25 k1 must be finite and >= 0, got {}", self.k1)));
        }
        if !(0.0..=1.0).contains(&self.b) {
            return Err(Error::Other(format!("BM25 b must be in [0, 1], got {}", self.b)));
        }
        Ok(())
    }
}

/// Builds a [`Bm25Index`]: add records (in batches, analysed in parallel), then [`finish`](Self::finish).
pub struct Bm25Builder {
    index: Index,
    writer: IndexWriter,
    body: Field,
    ord: Field,
    analyzer: Analyzer,
    ids: Vec<String>,
    lengths: Vec<u32>,
    dir: Option<tempfile::TempDir>,
}

impl Bm25Builder {
    fn schema() -> (Schema, Field, Field) {
        let mut sb = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER_NAME)
            .set_index_option(IndexRecordOption::WithFreqs)
            .set_fieldnorms(false);
        let body = sb.add_text_field("body", TextOptions::default().set_indexing_options(indexing));
        let ord = sb.add_u64_field("ord", NumericOptions::default().set_fast());
        (sb.build(), body, ord)
    }

    fn with_index(
        index: Index,
        body: Field,
        ord: Field,
        analyzer: Analyzer,
        dir: Option<tempfile::TempDir>,
    ) -> Result<Self> {
        index.tokenizers().register(TOKENIZER_NAME, analyzer.inner.clone());
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
        let writer = index.writer_with_num_threads(threads, threads * 64_000_000).map_err(tv)?;
        Ok(Self { index, writer, body, ord, analyzer, ids: Vec::new(), lengths: Vec::new(), dir })
    }

    /// An index held in memory (small and medium corpora, tests).
    pub fn in_ram(analyzer: Analyzer) -> Result<Self> {
        let (schema, body, ord) = Self::schema();
        Self::with_index(Index::create_in_ram(schema), body, ord, analyzer, None)
    }

    /// An index in a temporary folder under `parent` (the system's temporary folder when `None`),
    /// removed when the index is dropped.
    pub fn in_temp_dir(parent: Option<&Path>, analyzer: Analyzer) -> Result<Self> {
        let dir = match parent {
            Some(p) => tempfile::Builder::new().prefix("llmql-bm25-").tempdir_in(p).map_err(|e| Error::io(p, e))?,
            None => tempfile::Builder::new()
                .prefix("llmql-bm25-")
                .tempdir()
                .map_err(|e| Error::io(std::env::temp_dir(), e))?,
        };
        let (schema, body, ord) = Self::schema();
        let index = Index::create_in_dir(dir.path(), schema).map_err(tv)?;
        Self::with_index(index, body, ord, analyzer, Some(dir))
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds records; their text is analysed in parallel.
    pub fn add_batch(&mut self, records: &[TextRecord]) -> Result<()> {
        let analyzed: Vec<Vec<String>> =
            records.par_iter().map_init(|| self.analyzer.clone(), |a, r| a.analyze(&record_contents(r))).collect();
        for (r, tokens) in records.iter().zip(analyzed) {
            let ord = self.ids.len() as u64;
            self.ids.push(r.id.clone());
            let len = u32::try_from(tokens.len())
                .map_err(|_| Error::Other(format!("document {}: more than 2^32 tokens", r.id)))?;
            self.lengths.push(len);
            if tokens.is_empty() {
                continue; // nothing to index; it can never match
            }
            let tokens: Vec<Token> = tokens
                .into_iter()
                .enumerate()
                .map(|(position, text)| Token { offset_from: 0, offset_to: 0, position, text, position_length: 1 })
                .collect();
            let mut doc = TantivyDocument::default();
            doc.add_pre_tokenized_text(self.body, PreTokenizedString { text: String::new(), tokens });
            doc.add_u64(self.ord, ord);
            self.writer.add_document(doc).map_err(tv)?;
        }
        Ok(())
    }

    /// Commits and opens the index for search.
    pub fn finish(mut self) -> Result<Bm25Index> {
        self.writer.commit().map_err(tv)?;
        self.writer.wait_merging_threads().map_err(tv)?;
        let reader = self.index.reader().map_err(tv)?;
        let searcher = reader.searcher();
        let mut segments = Vec::new();
        for sr in searcher.segment_readers() {
            let inv = sr.inverted_index(self.body).map_err(tv)?;
            let col = sr.fast_fields().u64("ord").map_err(tv)?;
            let mut ords = Vec::with_capacity(sr.max_doc() as usize);
            for d in 0..sr.max_doc() {
                let o = col.first(d).ok_or_else(|| tv(format!("document {d} of a segment has no ord")))?;
                ords.push(o as u32);
            }
            segments.push(Segment { inv, ords });
        }
        let num_nonempty = self.lengths.iter().filter(|&&l| l > 0).count() as u64;
        let total_tokens: u64 = self.lengths.iter().map(|&l| l as u64).sum();
        tracing::info!(
            docs = self.ids.len(),
            segments = segments.len(),
            avgdl = if num_nonempty > 0 { total_tokens as f64 / num_nonempty as f64 } else { 0.0 },
            "BM25 index built"
        );
        Ok(Bm25Index {
            body: self.body,
            segments,
            ids: self.ids,
            lengths: self.lengths,
            num_nonempty,
            total_tokens,
            analyzer: self.analyzer,
            _dir: self.dir,
        })
    }
}

struct Segment {
    inv: Arc<InvertedIndexReader>,
    /// segment doc id -> our ordinal (position in the corpus)
    ords: Vec<u32>,
}

/// A searchable BM25 index (see the module docs for the formula).
pub struct Bm25Index {
    body: Field,
    segments: Vec<Segment>,
    ids: Vec<String>,
    lengths: Vec<u32>,
    num_nonempty: u64,
    total_tokens: u64,
    analyzer: Analyzer,
    /// Last, so that it is removed after the segments are closed.
    _dir: Option<tempfile::TempDir>,
}

/// Per-thread scratch space for scoring: a score per document and the list of touched ones.
pub struct Scratch {
    scores: Vec<f64>,
    touched: Vec<u32>,
}

impl Bm25Index {
    /// Indexes `records` in memory.
    pub fn build_in_ram(records: &[TextRecord], analyzer: Analyzer) -> Result<Self> {
        let mut b = Bm25Builder::in_ram(analyzer)?;
        b.add_batch(records)?;
        b.finish()
    }

    /// Number of documents (including empty ones).
    pub fn num_docs(&self) -> usize {
        self.ids.len()
    }

    /// `N` of the idf: documents with at least one token.
    pub fn num_nonempty_docs(&self) -> u64 {
        self.num_nonempty
    }

    /// Average length (tokens) over the documents with at least one token.
    pub fn avgdl(&self) -> f64 {
        if self.num_nonempty == 0 {
            0.0
        } else {
            self.total_tokens as f64 / self.num_nonempty as f64
        }
    }

    /// Exact length (tokens after analysis) of the `ord`-th document.
    pub fn doc_len(&self, ord: usize) -> u32 {
        self.lengths[ord]
    }

    pub fn doc_id(&self, ord: usize) -> &str {
        &self.ids[ord]
    }

    pub fn analyzer(&self) -> Analyzer {
        self.analyzer.clone()
    }

    /// Number of documents containing the (already analysed) term.
    pub fn doc_freq(&self, term: &str) -> Result<u64> {
        let t = Term::from_field_text(self.body, term);
        let mut df = 0u64;
        for s in &self.segments {
            df += s.inv.doc_freq(&t).map_err(tv)? as u64;
        }
        Ok(df)
    }

    pub fn scratch(&self) -> Scratch {
        Scratch { scores: vec![0.0; self.ids.len()], touched: Vec::new() }
    }

    /// Top `depth` documents for a query text, sorted by score (descending), ties by docid.
    pub fn search(&self, query: &str, depth: usize, params: Bm25Params) -> Result<Vec<RunEntry>> {
        let terms = self.analyzer.clone().analyze(query);
        self.search_terms(&terms, depth, params, &mut self.scratch())
    }

    /// As [`search`](Self::search), for analysed query tokens (repeats count), reusing `scratch`.
    pub fn search_terms(
        &self,
        terms: &[String],
        depth: usize,
        params: Bm25Params,
        scratch: &mut Scratch,
    ) -> Result<Vec<RunEntry>> {
        if depth == 0 || terms.is_empty() || self.num_nonempty == 0 {
            return Ok(Vec::new());
        }
        // Bag of words: unique terms in first-seen order, with their query counts.
        let mut bag: Vec<(&str, f64)> = Vec::new();
        for t in terms {
            match bag.iter_mut().find(|(u, _)| *u == t.as_str()) {
                Some((_, c)) => *c += 1.0,
                None => bag.push((t.as_str(), 1.0)),
            }
        }
        let n = self.num_nonempty as f64;
        let avgdl = self.avgdl();
        let (k1, b) = (params.k1, params.b);
        for (term, qtf) in bag {
            let t = Term::from_field_text(self.body, term);
            let mut infos = Vec::with_capacity(self.segments.len());
            let mut df = 0u64;
            for s in &self.segments {
                if let Some(ti) = s.inv.get_term_info(&t).map_err(tv)? {
                    df += ti.doc_freq as u64;
                    infos.push((s, ti));
                }
            }
            if df == 0 {
                continue;
            }
            let df = df as f64;
            let w = qtf * (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for (s, ti) in infos {
                let mut p = s.inv.read_postings_from_terminfo(&ti, IndexRecordOption::WithFreqs).map_err(tv)?;
                let mut d = p.doc();
                while d != TERMINATED {
                    let tf = p.term_freq() as f64;
                    let ord = s.ords[d as usize];
                    let dl = self.lengths[ord as usize] as f64;
                    let norm = k1 * (1.0 - b + b * dl / avgdl);
                    let slot = &mut scratch.scores[ord as usize];
                    if *slot == 0.0 {
                        scratch.touched.push(ord);
                    }
                    *slot += w * tf / (tf + norm);
                    d = p.advance();
                }
            }
        }
        let mut hits: Vec<(u32, f64)> = scratch.touched.iter().map(|&o| (o, scratch.scores[o as usize])).collect();
        for &o in &scratch.touched {
            scratch.scores[o as usize] = 0.0;
        }
        scratch.touched.clear();
        let cmp = |a: &(u32, f64), b: &(u32, f64)| {
            b.1.partial_cmp(&a.1)
                .unwrap_or(Ordering::Equal)
                .then_with(|| self.ids[a.0 as usize].cmp(&self.ids[b.0 as usize]))
        };
        if hits.len() > depth {
            hits.select_nth_unstable_by(depth - 1, cmp);
            hits.truncate(depth);
        }
        hits.sort_by(cmp);
        Ok(hits.into_iter().map(|(o, s)| RunEntry { docid: self.ids[o as usize].clone(), score: s }).collect())
    }

    /// Searches every query in parallel; `on_query` is called once per finished query (progress).
    /// Queries with no indexed term get an empty ranking (they are in the run with no entries).
    pub fn search_all(
        &self,
        queries: &[TextRecord],
        depth: usize,
        params: Bm25Params,
        on_query: &(dyn Fn() + Sync),
    ) -> Result<Run> {
        params.validate()?;
        let threads = rayon::current_num_threads().max(1);
        let chunk = queries.len().div_ceil(threads * 4).max(1);
        let results: Vec<Vec<(String, Vec<RunEntry>)>> = queries
            .par_chunks(chunk)
            .map(|qs| -> Result<Vec<(String, Vec<RunEntry>)>> {
                let mut scratch = self.scratch();
                let mut analyzer = self.analyzer.clone();
                let mut out = Vec::with_capacity(qs.len());
                for q in qs {
                    let terms = analyzer.analyze(&q.text);
                    let hits = self.search_terms(&terms, depth, params, &mut scratch)?;
                    out.push((q.id.clone(), hits));
                    on_query();
                }
                Ok(out)
            })
            .collect::<Result<_>>()?;
        let mut run = Run::new();
        let mut empty = 0usize;
        for (qid, hits) in results.into_iter().flatten() {
            if hits.is_empty() {
                empty += 1;
            }
            run.insert(qid, hits);
        }
        if empty > 0 {
            tracing::warn!("{empty} of {} queries matched no document", queries.len());
        }
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, text: &str) -> TextRecord {
        TextRecord { id: id.into(), title: None, text: text.into() }
    }

    #[test]
    fn analyzer_lowercases_stems_and_drops_stopwords() {
        let mut a = Analyzer::default();
        assert_eq!(a.analyze("The Running dogs of John's farm"), vec!["run", "dog", "john", "farm"]);
        assert_eq!(a.analyze("it's a DOG’s life"), vec!["dog", "life"]);
        let mut plain = Analyzer::new(AnalyzerOptions { stopwords: false, stem: false });
        assert_eq!(plain.analyze("The Running-dogs"), vec!["the", "running", "dogs"]);
    }

    #[test]
    fn tiny_index_scores_and_ties() {
        let docs = vec![rec("b", "apple banana"), rec("a", "apple banana"), rec("c", "cherry"), rec("e", "the of")];
        let idx = Bm25Index::build_in_ram(&docs, Analyzer::default()).unwrap();
        assert_eq!(idx.num_docs(), 4);
        assert_eq!(idx.num_nonempty_docs(), 3);
        assert_eq!(idx.doc_len(3), 0);
        assert_eq!(idx.doc_freq("appl").unwrap(), 2);
        let hits = idx.search("apple", 10, Bm25Params::default()).unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.docid.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]); // tie -> docid ascending
        let idf = (1.0f64 + (3.0 - 2.0 + 0.5) / (2.0 + 0.5)).ln();
        let avgdl = 5.0 / 3.0;
        let want = idf * 1.0 / (1.0 + 0.9 * (1.0 - 0.4 + 0.4 * 2.0 / avgdl));
        assert!((hits[0].score - want).abs() < 1e-12);
        assert_eq!(idx.search("apple", 1, Bm25Params::default()).unwrap().len(), 1);
        assert!(idx.search("zebra the", 10, Bm25Params::default()).unwrap().is_empty());
    }
}
