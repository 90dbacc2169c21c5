//! Our metrics equal ir-measures' (pytrec-eval-terrier, and the MS MARCO script for RR@k) on the fixtures in
//! tests/fixtures/eval/ (made by make_eval_fixtures.py): every measure, every query, and the means, with judged
//! queries missing from the run counted as zeros (ir-measures' default) and skipped.
use llmql_core::metrics::{evaluate, Metric};
use llmql_core::trec::{read_qrels, read_run, write_run};
use serde_json::Value;
use std::path::PathBuf;

const TOL: f64 = 1e-6;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("eval")
}

fn expected() -> Value {
    let p = dir().join("expected.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn measures(exp: &Value) -> (Vec<String>, Vec<Metric>) {
    let names: Vec<String> =
        exp["measures"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
    let metrics: Vec<Metric> = names.iter().map(|n| n.parse().unwrap_or_else(|e| panic!("{e}"))).collect();
    for (n, m) in names.iter().zip(&metrics) {
        assert_eq!(&m.to_string(), n, "our name for {n}");
    }
    (names, metrics)
}

/// Compares one evaluation with one expected block; returns the number of values compared.
fn compare(case: &str, mode: &str, exp: &Value, res: &llmql_core::metrics::EvalResult, names: &[String]) -> usize {
    let mut errors = Vec::new();
    let mut compared = 0;
    assert_eq!(res.num_queries as u64, exp["num_queries"].as_u64().unwrap(), "{case}/{mode}: number of queries");
    let exp_q = exp["per_query"].as_object().unwrap();
    let ours_q: Vec<&String> = res.per_query.keys().collect();
    let mut theirs_q: Vec<&String> = exp_q.keys().collect();
    theirs_q.sort();
    assert_eq!(ours_q, theirs_q, "{case}/{mode}: evaluated queries");
    for (i, name) in names.iter().enumerate() {
        for (qid, vals) in exp_q {
            let want = vals[name].as_f64().unwrap();
            let got = res.per_query[qid][i];
            compared += 1;
            if (got - want).abs() > TOL {
                errors.push(format!("{case}/{mode} query {qid} {name}: ours {got}, ir-measures {want}"));
            }
        }
        let want = exp["aggregate"][name].as_f64().unwrap();
        let got = res.means[i];
        compared += 1;
        if (got - want).abs() > TOL {
            errors.push(format!("{case}/{mode} mean {name}: ours {got}, ir-measures {want}"));
        }
    }
    assert!(errors.is_empty(), "{} mismatches:\n{}", errors.len(), errors.join("\n"));
    compared
}

#[test]
fn metrics_match_ir_measures() {
    let exp = expected();
    let (names, metrics) = measures(&exp);
    let mut compared = 0;
    let cases = exp["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let qrels = read_qrels(&dir().join(case["qrels"].as_str().unwrap())).unwrap();
        let run = read_run(&dir().join(case["run"].as_str().unwrap())).unwrap();
        for (mode, include) in [("include_missing", true), ("skip_missing", false)] {
            let res = evaluate(&qrels, &run, &metrics, include);
            let strs = |v: &Value| -> Vec<String> {
                v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
            };
            assert_eq!(res.missing, strs(&case["missing_from_run"]), "{name}: missing queries");
            assert_eq!(res.unjudged, strs(&case["unjudged_in_run"]), "{name}: unjudged queries");
            compared += compare(name, mode, &case[mode], &res, &names);
        }
    }
    // 3 cases x 2 modes x (queries + 1) x measures: make sure the comparison was not vacuous.
    assert!(compared >= 4000, "only {compared} values compared"); // 72 measures x 66 (query or mean) rows
}

/// The fixtures exercise what they claim to: ties change RR@k vs RR, rel=2 changes recall, queries go missing.
#[test]
fn fixtures_cover_the_tricky_cases() {
    let exp = expected();
    let a = &exp["cases"][0]["skip_missing"]["per_query"];
    assert_eq!(a["4"]["RR@1000"].as_f64(), Some(1.0)); // MS MARCO order: tie broken by docid ascending
    assert_eq!(a["4"]["RR"].as_f64(), Some(0.25)); // trec_eval order: docid descending
    assert_eq!(a["2"]["RR"].as_f64(), Some(0.5)); // scores tie as f32: trec_eval ranks f2e, f2d (relevant), ...
    assert_eq!(a["2"]["RR@10"].as_f64(), Some(1.0)); // ... the MS MARCO script (f64) ranks f2a (relevant) first
    assert_eq!(a["6"]["RR"].as_f64(), Some(1.0 / 3.0)); // -0.0 ties with 0.0: z6d z6c z6b(relevant) z6a
    assert_eq!(a["6"]["RR@10"].as_f64(), Some(1.0)); // z6a(relevant) z6b z6c z6d
    assert_eq!(a["9"]["nDCG@10"].as_f64(), Some(0.0)); // judged, nothing relevant
    assert_eq!(a["10"]["R(rel=2)@1000"].as_f64(), Some(0.0));
    assert!(a["10"]["R@1000"].as_f64().unwrap() > 0.0);
    assert_eq!(exp["cases"][0]["include_missing"]["per_query"]["11"]["nDCG@10"].as_f64(), Some(0.0));
}

/// A run rewritten by our writer (re-sorted, re-ranked, scores re-printed) scores exactly the same.
#[test]
fn rewritten_run_scores_the_same() {
    let exp = expected();
    let (_, metrics) = measures(&exp);
    let tmp = tempfile::tempdir().unwrap();
    for case in exp["cases"].as_array().unwrap() {
        let qrels = read_qrels(&dir().join(case["qrels"].as_str().unwrap())).unwrap();
        let run = read_run(&dir().join(case["run"].as_str().unwrap())).unwrap();
        let out = tmp.path().join("rewritten.trec");
        write_run(&out, &run, "llmql").unwrap();
        let back = read_run(&out).unwrap();
        let a = evaluate(&qrels, &run, &metrics, true);
        let b = evaluate(&qrels, &back, &metrics, true);
        assert_eq!(a, b, "{}", case["name"]);
    }
}
