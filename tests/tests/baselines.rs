//! Baselines and mining on the committed fixture collection (tests/fixtures/collection):
//! BM25 quality and exact scores, Dirichlet QL scores by hand, hard-negative mining rules, and
//! the format loaders' error messages.
use llmql_core::bm25::{Analyzer, AnalyzerOptions, Bm25Builder, Bm25Index, Bm25Params};
use llmql_core::dirichlet;
use llmql_core::formats::{self, load_beir, read_tevatron, read_text_records, record_contents, BeirPaths};
use llmql_core::mining::{self, MiningOptions};
use llmql_core::records::TextRecord;
use llmql_core::trec::{self, Qrels, Run, RunEntry};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

fn collection() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/collection")
}

fn rec(id: &str, title: Option<&str>, text: &str) -> TextRecord {
    TextRecord { id: id.into(), title: title.map(String::from), text: text.into() }
}

/// nDCG@10 as trec_eval defines it (gain = grade, log2(rank + 1) discount, ideal from the qrels),
/// averaged over the judged queries; a query absent from the run scores 0.
fn ndcg10(qrels: &Qrels, run: &Run) -> f64 {
    let mut total = 0.0;
    for (qid, judged) in qrels {
        let mut entries = run.get(qid).cloned().unwrap_or_default();
        trec::sort_entries(&mut entries);
        let dcg: f64 = entries
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, e)| judged.get(&e.docid).copied().unwrap_or(0).max(0) as f64 / ((i + 2) as f64).log2())
            .sum();
        let mut ideal: Vec<i32> = judged.values().copied().filter(|&g| g > 0).collect();
        ideal.sort_by(|a, b| b.cmp(a));
        let idcg: f64 = ideal.iter().take(10).enumerate().map(|(i, &g)| g as f64 / ((i + 2) as f64).log2()).sum();
        total += if idcg > 0.0 { dcg / idcg } else { 0.0 };
    }
    total / qrels.len() as f64
}

#[test]
fn fixture_collection_is_well_formed() {
    let test = load_beir(&collection(), "test").unwrap();
    let train = load_beir(&collection(), "train").unwrap();
    assert_eq!(test.corpus.len(), 60);
    assert_eq!((test.queries.len(), train.queries.len()), (12, 12));
    let ids: std::collections::HashSet<&str> = test.corpus.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 60, "document ids are unique");
    for q in [&test.qrels, &train.qrels] {
        for judged in q.values() {
            assert!(judged.values().any(|&g| g > 0));
            assert!(judged.keys().all(|d| ids.contains(d.as_str())));
        }
    }
    assert!(test.qrels.keys().all(|q| !train.qrels.contains_key(q)), "splits are disjoint");
    assert!(test.corpus.iter().all(|r| r.title.is_some()));
}

#[test]
fn bm25_ranks_the_relevant_passage_first_on_the_fixture() {
    let ds = load_beir(&collection(), "test").unwrap();
    let index = Bm25Index::build_in_ram(&ds.corpus, Analyzer::default()).unwrap();
    let run = index.search_all(&ds.queries, 100, Bm25Params::default(), &|| {}).unwrap();
    assert_eq!(run.len(), 12);
    let mut first_relevant = 0;
    let mut first_best = 0;
    for (qid, judged) in &ds.qrels {
        let top = &run[qid][0].docid;
        let g = judged.get(top).copied().unwrap_or(0);
        first_relevant += usize::from(g > 0);
        first_best += usize::from(g == 2);
        eprintln!("{qid}: top {top} (grade {g})");
    }
    let ndcg = ndcg10(&ds.qrels, &run);
    eprintln!("BM25 on the fixture test split: relevant at rank 1 for {first_relevant}/12 (grade 2: {first_best}/12), nDCG@10 = {ndcg:.4}");
    assert!(first_relevant >= 9, "{first_relevant}/12");
    assert!(ndcg > 0.7, "{ndcg}");
    // Every run is sorted, deterministic, at most `depth` long.
    let again = index.search_all(&ds.queries, 100, Bm25Params::default(), &|| {}).unwrap();
    assert_eq!(run, again);
    let short = index.search_all(&ds.queries, 3, Bm25Params::default(), &|| {}).unwrap();
    for (qid, e) in &short {
        assert!(e.len() <= 3);
        assert_eq!(e.as_slice(), &run[qid][..e.len()]);
    }
}

/// The textbook computation, on the analyser's tokens, with exact document lengths.
fn bm25_by_hand(docs: &[Vec<String>], query: &[String], k1: f64, b: f64) -> Vec<f64> {
    let nonempty: Vec<&Vec<String>> = docs.iter().filter(|d| !d.is_empty()).collect();
    let n = nonempty.len() as f64;
    let avgdl = nonempty.iter().map(|d| d.len()).sum::<usize>() as f64 / n;
    docs.iter()
        .map(|d| {
            let mut s = 0.0;
            for t in query {
                let df = docs.iter().filter(|x| x.contains(t)).count() as f64;
                if df == 0.0 {
                    continue;
                }
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                let tf = d.iter().filter(|x| *x == t).count() as f64;
                s += idf * tf / (tf + k1 * (1.0 - b + b * d.len() as f64 / avgdl));
            }
            s
        })
        .collect()
}

#[test]
fn bm25_scores_equal_the_formula_with_exact_lengths() {
    // Lengths chosen past tantivy's exact fieldnorm range (~40 tokens) to show that lengths are not quantised.
    let long = "Rivers carry sediment downstream. ".repeat(19) + "A delta forms where the river meets the sea.";
    let docs = [
        rec("a", Some("River deltas"), &long),
        rec("b", None, "The river flooded the valley; river water covered the fields of the valley."),
        rec("c", Some("Sea"), "Sea water is salty, and the sea covers most of the planet."),
        rec("d", None, "Sediment settles in still water."),
    ];
    let mut an = Analyzer::default();
    let analysed: Vec<Vec<String>> = docs.iter().map(|r| an.analyze(&record_contents(r))).collect();
    assert!(analysed[0].len() > 60, "{}", analysed[0].len());
    for (k1, b) in [(0.9, 0.4), (1.2, 0.75), (2.0, 1.0), (0.5, 0.0)] {
        let params = Bm25Params { k1, b };
        for builder in [Bm25Builder::in_ram(Analyzer::default()), Bm25Builder::in_temp_dir(None, Analyzer::default())] {
            let mut builder = builder.unwrap();
            builder.add_batch(&docs[..2]).unwrap();
            builder.add_batch(&docs[2..]).unwrap();
            let index = builder.finish().unwrap();
            for (ord, d) in analysed.iter().enumerate() {
                assert_eq!(index.doc_len(ord) as usize, d.len());
            }
            for q in ["river sediment", "sea water water", "valley flooding the delta", "nothing matches xyzzy"] {
                let qt = an.analyze(q);
                let want = bm25_by_hand(&analysed, &qt, k1, b);
                let got: HashMap<String, f64> =
                    index.search(q, 10, params).unwrap().into_iter().map(|e| (e.docid, e.score)).collect();
                for (r, w) in docs.iter().zip(&want) {
                    match got.get(&r.id) {
                        Some(g) => assert!(
                            (g - w).abs() < 1e-4 && (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                            "{q} {}: {g} vs {w}",
                            r.id
                        ),
                        None => assert_eq!(*w, 0.0, "{q} {}: missing, want {w}", r.id),
                    }
                }
            }
        }
    }
}

#[test]
fn dirichlet_scores_equal_a_hand_computation() {
    // Analysed (stop words out, Porter2 stems):
    //   d1 "Green tea and black tea."        -> green tea black tea       (len 4)
    //   d2 "Black coffee."                   -> black coffe               (len 2)
    //   d3 "Tea" + "Green green tea leaves"  -> tea green green tea leav  (len 5)
    // |C| = 11; cf: tea 4, green 3, black 2, coffe 1, leav 1
    let corpus = vec![
        rec("d1", None, "Green tea and black tea."),
        rec("d2", None, "Black coffee."),
        rec("d3", Some("Tea"), "Green green tea leaves"),
    ];
    let mut an = Analyzer::default();
    assert_eq!(an.analyze(&record_contents(&corpus[2])), vec!["tea", "green", "green", "tea", "leav"]);
    let queries = vec![rec("q", None, "the green tea with unicorns")]; // "unicorn" is not in the collection: skipped
    let mut run = Run::new();
    run.insert("q".into(), ["d1", "d2", "d3"].iter().map(|d| RunEntry { docid: d.to_string(), score: 0.0 }).collect());
    let mu = 1000.0;
    let out =
        dirichlet::rerank(corpus.clone().into_iter().map(Ok), &queries, &run, 10, mu, &Analyzer::default(), &|| {})
            .unwrap();
    let (p_green, p_tea) = (3.0 / 11.0, 4.0 / 11.0);
    let ql = |tf_green: f64, tf_tea: f64, len: f64| {
        ((tf_green + mu * p_green) / (len + mu)).ln() + ((tf_tea + mu * p_tea) / (len + mu)).ln()
    };
    let want: HashMap<&str, f64> =
        [("d1", ql(1.0, 2.0, 4.0)), ("d2", ql(0.0, 0.0, 2.0)), ("d3", ql(2.0, 2.0, 5.0))].into();
    let got = &out["q"];
    assert_eq!(got.iter().map(|e| e.docid.as_str()).collect::<Vec<_>>(), vec!["d3", "d1", "d2"]);
    for e in got {
        assert!(
            (e.score - want[e.docid.as_str()]).abs() < 1e-12,
            "{}: {} vs {}",
            e.docid,
            e.score,
            want[e.docid.as_str()]
        );
    }
    // Depth 2 reranks the run's top 2 only.
    let mut run2 = run.clone();
    run2.get_mut("q").unwrap()[2].score = 5.0; // d3 first, d1 and d2 tie (d1 wins by docid)
    let out =
        dirichlet::rerank(corpus.into_iter().map(Ok), &queries, &run2, 2, mu, &Analyzer::default(), &|| {}).unwrap();
    assert_eq!(out["q"].iter().map(|e| e.docid.as_str()).collect::<Vec<_>>(), vec!["d3", "d1"]);
}

#[test]
fn dirichlet_reranks_a_bm25_run_on_the_fixture() {
    let ds = load_beir(&collection(), "test").unwrap();
    let index = Bm25Index::build_in_ram(&ds.corpus, Analyzer::default()).unwrap();
    let bm25 = index.search_all(&ds.queries, 20, Bm25Params::default(), &|| {}).unwrap();
    let ql = dirichlet::rerank(
        ds.corpus.clone().into_iter().map(Ok),
        &ds.queries,
        &bm25,
        10,
        1000.0,
        &Analyzer::default(),
        &|| {},
    )
    .unwrap();
    for (qid, e) in &ql {
        let mut a: Vec<&str> = e.iter().map(|x| x.docid.as_str()).collect();
        let mut b: Vec<&str> = bm25[qid].iter().take(10).map(|x| x.docid.as_str()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{qid}: the same top 10, reordered");
        assert!(e.windows(2).all(|w| w[0].score >= w[1].score));
    }
    eprintln!("Dirichlet QL (mu 1000) over BM25 top 10, fixture test split: nDCG@10 = {:.4}", ndcg10(&ds.qrels, &ql));
}

#[test]
fn mining_excludes_positives_and_respects_skip_depth_count() {
    let dir = collection();
    let train = load_beir(&dir, "train").unwrap();
    let all_queries = read_text_records(&dir.join("queries.jsonl")).unwrap();
    let index = Bm25Index::build_in_ram(&train.corpus, Analyzer::default()).unwrap();
    let run = index.search_all(&all_queries, 30, Bm25Params::default(), &|| {}).unwrap();
    let corpus: HashMap<&str, &TextRecord> = train.corpus.iter().map(|r| (r.id.as_str(), r)).collect();
    for opts in [
        MiningOptions { depth: 10, skip_top: 1, count: 3 },
        MiningOptions { depth: 30, skip_top: 0, count: 100 },
        MiningOptions { depth: 5, skip_top: 4, count: 2 },
    ] {
        let (examples, stats) =
            mining::mine(&all_queries, &train.qrels, &run, train.corpus.clone().into_iter().map(Ok), &opts).unwrap();
        assert_eq!(stats.no_positive, 12, "the 12 test queries have no judgment in train qrels");
        assert_eq!(examples.len() + stats.no_negative, 12);
        for ex in &examples {
            let qid = ex.query_id.as_deref().unwrap();
            let judged = &train.qrels[qid];
            // Positives: every grade > 0 document, best grade first, with corpus title and text.
            let mut want_pos: Vec<(&String, &i32)> = judged.iter().filter(|(_, &g)| g > 0).collect();
            want_pos.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            assert_eq!(
                ex.positive_passages.iter().map(|p| &p.docid).collect::<Vec<_>>(),
                want_pos.iter().map(|p| p.0).collect::<Vec<_>>()
            );
            for p in ex.positive_passages.iter().chain(&ex.negative_passages) {
                let r = corpus[p.docid.as_str()];
                assert_eq!((p.title.as_str(), p.text.as_str()), (r.title.as_deref().unwrap(), r.text.as_str()));
            }
            // Negatives: ranks skip_top+1..=depth, minus grade > 0, first `count`, in rank order.
            let want_neg: Vec<&str> = run[qid]
                .iter()
                .enumerate()
                .filter(|(i, e)| *i >= opts.skip_top && *i < opts.depth && judged.get(&e.docid).is_none_or(|&g| g <= 0))
                .map(|(_, e)| e.docid.as_str())
                .take(opts.count)
                .collect();
            let got: Vec<&str> = ex.negative_passages.iter().map(|p| p.docid.as_str()).collect();
            assert_eq!(got, want_neg, "{qid} {opts:?}");
            assert!(got.len() <= opts.count);
            assert!(got.iter().all(|d| judged.get(*d).is_none_or(|&g| g <= 0)));
            assert_eq!(ex.query, all_queries.iter().find(|q| q.id == qid).unwrap().text);
        }
    }
    // A judged non-relevant document (q13: d34, grade 0) may be a negative; a relevant one never.
    let (examples, _) = mining::mine(
        &all_queries,
        &train.qrels,
        &run,
        train.corpus.clone().into_iter().map(Ok),
        &MiningOptions { depth: 30, skip_top: 0, count: 100 },
    )
    .unwrap();
    let q13 = examples.iter().find(|e| e.query_id.as_deref() == Some("q13")).unwrap();
    let negs: Vec<&str> = q13.negative_passages.iter().map(|p| p.docid.as_str()).collect();
    assert!(negs.contains(&"d34") && !negs.contains(&"d33") && !negs.contains(&"d35"), "{negs:?}");
}

#[test]
fn mining_skips_queries_without_negatives_and_names_missing_documents() {
    let queries = vec![rec("q1", None, "one"), rec("q2", None, "two"), rec("q3", None, "three")];
    let mut qrels = Qrels::new();
    qrels.insert("q1".into(), BTreeMap::from([("a".to_string(), 1)]));
    qrels.insert("q2".into(), BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)]));
    let mut run = Run::new();
    run.insert(
        "q1".into(),
        vec![RunEntry { docid: "a".into(), score: 2.0 }, RunEntry { docid: "b".into(), score: 1.0 }],
    );
    run.insert(
        "q2".into(),
        vec![RunEntry { docid: "a".into(), score: 2.0 }, RunEntry { docid: "b".into(), score: 1.0 }],
    );
    let opts = MiningOptions { depth: 10, skip_top: 0, count: 5 };
    let (mined, stats) = mining::select(&queries, &qrels, &run, &opts).unwrap();
    assert_eq!(mined.len(), 1);
    assert_eq!(
        (mined[0].positives.clone(), mined[0].negatives.clone()),
        (vec!["a".to_string()], vec!["b".to_string()])
    );
    assert_eq!((stats.no_positive, stats.no_negative, stats.short), (1, 1, 1));
    let corpus = vec![rec("a", None, "x")];
    let e = mining::mine(&queries, &qrels, &run, corpus.into_iter().map(Ok), &opts).unwrap_err().to_string();
    assert!(e.contains("\"b\"") && e.contains("q1"), "{e}");
}

#[test]
fn loaders_read_each_format() {
    let dir = tempfile::tempdir().unwrap();
    // MS MARCO tsv.
    let coll = dir.path().join("collection.tsv");
    std::fs::write(&coll, "0\tThe first passage.\n1\tThe second passage.\r\n\n2\tThird.\n").unwrap();
    let r = read_text_records(&coll).unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[1], rec("1", None, "The second passage."));
    // JSON lines through the same entry point.
    let j = dir.path().join("queries.jsonl");
    std::fs::write(&j, "{\"_id\": \"q1\", \"text\": \"hello\"}\n{\"id\": 2, \"text\": \"x\", \"title\": \"T\"}\n")
        .unwrap();
    let r = read_text_records(&j).unwrap();
    assert_eq!(r, vec![rec("q1", None, "hello"), rec("2", Some("T"), "x")]);
    // BEIR folder.
    let p = BeirPaths::new(&collection(), "train").unwrap();
    assert!(p.qrels.ends_with("qrels/train.tsv"));
    assert_eq!(formats::beir_splits(&collection()).unwrap(), vec!["test", "train"]);
    let e = BeirPaths::new(&collection(), "dev").unwrap_err().to_string();
    assert!(e.contains("dev.tsv") && e.contains("splits present: test, train"), "{e}");
    // Tevatron, written then read back, with a missing query_id / title tolerated.
    let t = dir.path().join("train.jsonl");
    std::fs::write(
        &t,
        r#"{"query_id": "1", "query": "q", "positive_passages": [{"docid": "7", "title": "T", "text": "p"}], "negative_passages": [{"docid": "8", "text": "n"}]}
{"query": "r", "positive_passages": [{"docid": 9, "title": "", "text": "p2"}], "negative_passages": []}
"#,
    )
    .unwrap();
    let ex = read_tevatron(&t).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].negative_passages[0].title, "");
    assert_eq!((ex[1].query_id.as_deref(), ex[1].positive_passages[0].docid.as_str()), (None, "9"));
    let t2 = dir.path().join("again.jsonl");
    formats::write_tevatron(&t2, &ex).unwrap();
    assert_eq!(read_tevatron(&t2).unwrap(), ex);
}

#[test]
fn loaders_name_file_and_line_of_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, &str, &str)> = vec![
        ("bad.tsv", "1\tok\n2\tok\n3 missing tab\n", "line 3: expected 2 tab-separated fields (id, text), found 1"),
        ("bad3.tsv", "1\tok\n\n2\ta\tb\n", "line 3: expected 2 tab-separated fields (id, text), found 3"),
        ("bad.jsonl", "{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\"}\n", "line 2: missing field `text`"),
        ("broken.jsonl", "{\"_id\": \"a\", \"text\": \"x\"}\n\n{\"_id\": \"b\", \n", "line 3: malformed JSON"),
    ];
    for (name, body, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let e = read_text_records(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
    let e = read_text_records(&dir.path().join("x.csv")).unwrap_err().to_string();
    assert!(e.contains("x.csv") && e.contains(".jsonl") && e.contains(".tsv"), "{e}");
    let t = dir.path().join("tev.jsonl");
    std::fs::write(
        &t,
        "{\"query\": \"q\", \"positive_passages\": [{\"docid\": \"1\", \"text\": \"p\"}]}\n{\"query\": \"q\", \"positive_passages\": [{\"docid\": \"1\"}]}\n",
    )
    .unwrap();
    let e = read_tevatron(&t).unwrap_err().to_string();
    assert!(e.contains("tev.jsonl, line 2") && e.contains("missing field `text`"), "{e}");
    let e = read_text_records(&dir.path().join("absent.tsv")).unwrap_err().to_string();
    assert!(e.contains("absent.tsv"), "{e}");
}

#[test]
fn analyzer_options_change_tokens() {
    let mut plain = Analyzer::new(AnalyzerOptions { stopwords: false, stem: false });
    let mut en = Analyzer::default();
    assert_eq!(plain.analyze("The Pont du Gard's arches"), vec!["the", "pont", "du", "gard", "arches"]);
    assert_eq!(en.analyze("The Pont du Gard's arches"), vec!["pont", "du", "gard", "arch"]);
}

#[test]
#[ignore = "prints the BM25 ranking of every fixture query (for writing and checking the fixture)"]
fn print_fixture_rankings() {
    let dir = collection();
    let corpus = read_text_records(&dir.join("corpus.jsonl")).unwrap();
    let queries = read_text_records(&dir.join("queries.jsonl")).unwrap();
    let mut qrels = trec::read_qrels(&dir.join("qrels/train.tsv")).unwrap();
    qrels.extend(trec::read_qrels(&dir.join("qrels/test.tsv")).unwrap());
    let index = Bm25Index::build_in_ram(&corpus, Analyzer::default()).unwrap();
    let run = index.search_all(&queries, 10, Bm25Params::default(), &|| {}).unwrap();
    for q in &queries {
        let e = &run[&q.id];
        let shown: Vec<String> = e
            .iter()
            .map(|x| {
                format!(
                    "{}{}:{:.2}",
                    x.docid,
                    match qrels[&q.id].get(&x.docid) {
                        Some(g) => format!("[{g}]"),
                        None => String::new(),
                    },
                    x.score
                )
            })
            .collect();
        eprintln!("{} {:?} ({} hits): {}", q.id, q.text, e.len(), shown.join(" "));
    }
}
