//! LLM-QL stage 1 against transformers (tests/fixtures/ql/make_ql_fixtures.py): example layouts
//! (token ids, separator position), QL scores with and without the Attention Stop mask, the
//! training loss in both label modes; plus the Attention Stop property and padding invariance.
#![cfg(feature = "flex")]
use burn::backend::Flex;
use burn::tensor::{DType, Tensor};
use llmql_core::model::{AttentionMask, DecoderModel, LoadOptions};
use llmql_core::ql::example::{build_d2q, build_q2d, passage_text, LossOn, QlExample};
use llmql_core::ql::loss::{per_example_sums, target_log_probs, QlBatch};
use llmql_core::ql::{attention_stop_mask, ql_scores, QlScoreOptions};
use llmql_core::ModelSource;
use llmql_tests::fixture;
use serde_json::Value;

fn load(model: &str) -> (ModelSource, DecoderModel<Flex>, Value) {
    let ck = ModelSource::open(&fixture(model)).unwrap();
    let m = ck
        .load_model::<Flex>(
            LoadOptions { dtype: DType::F32, lm_head: true, host_embeddings: false, compute_dtype: None },
            &Default::default(),
        )
        .unwrap();
    let g: Value = serde_json::from_slice(&std::fs::read(fixture(&format!("ql/{model}.json"))).unwrap()).unwrap();
    (ck, m, g)
}

fn examples(ck: &ModelSource, g: &Value) -> Vec<(String, QlExample)> {
    g["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let title = e["title"].as_str().filter(|t| !t.is_empty());
            let passage = passage_text(title, e["text"].as_str().unwrap());
            assert_eq!(passage, e["passage"].as_str().unwrap());
            let (p, q) = (e["p_max_len"].as_u64().unwrap() as usize, e["q_max_len"].as_u64().unwrap() as usize);
            let query = e["query"].as_str().unwrap();
            let ex = match e["direction"].as_str().unwrap() {
                "d2q" => build_d2q(&ck.tokenizer, &passage, query, p, q).unwrap(),
                // The fixture bounds a q2d prompt by Q and its target by P; ours bounds the prompt
                // by p_max_len and the target by q_max_len in both directions: swap.
                _ => build_q2d(&ck.tokenizer, &passage, query, q, p).unwrap(),
            };
            let name = e["name"].as_str().unwrap().to_string();
            let want: Vec<u32> =
                e["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
            assert_eq!(ex.input_ids, want, "{name}: token ids differ from the reference layout");
            assert_eq!(ex.sep_pos as u64, e["sep_pos"].as_u64().unwrap(), "{name}: separator position");
            (name, ex)
        })
        .collect()
}

fn check_model(model: &str) {
    let (ck, m, g) = load(model);
    let exs = examples(&ck, &g);
    let device = Default::default();
    // QL scores: single sequences, with and without Attention Stop.
    for (key, stop) in [("ql_scores", true), ("ql_scores_no_mask", false)] {
        for s in g[key].as_array().unwrap() {
            let name = s["name"].as_str().unwrap();
            let ex = &exs.iter().find(|(n, _)| n == name).unwrap().1;
            let batch =
                QlBatch::<Flex>::new(std::slice::from_ref(ex), LossOn::Query, ck.tokenizer.eos_id, stop, &device);
            let lp: Vec<f32> = target_log_probs(&m, &batch).into_data().to_vec().unwrap();
            let ours: f64 = lp.iter().map(|&x| x as f64).sum();
            let want = s["score"].as_f64().unwrap();
            assert!((ours - want).abs() <= 1e-3, "{model}/{name} ({key}): {ours} vs {want}");
        }
    }
    // Loss over the padded batch, both label modes, and per-example sums.
    let order: Vec<&str> = g["batch_order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let batch_ex: Vec<QlExample> = order.iter().map(|n| exs.iter().find(|(x, _)| x == n).unwrap().1.clone()).collect();
    for (mode, on) in [("all", LossOn::All), ("query", LossOn::Query)] {
        let batch = QlBatch::<Flex>::new(&batch_ex, on, ck.tokenizer.eos_id, true, &device);
        let want = &g["loss"][mode];
        assert_eq!(batch.num_targets() as u64, want["n_labelled"].as_u64().unwrap(), "{model}/{mode}: labelled tokens");
        let lp: Vec<f32> = target_log_probs(&m, &batch).into_data().to_vec().unwrap();
        let loss = -lp.iter().map(|&x| x as f64).sum::<f64>() / lp.len() as f64;
        let wl = want["loss"].as_f64().unwrap();
        assert!((loss - wl).abs() <= 1e-4, "{model}/{mode}: loss {loss} vs {wl}");
        let sums = per_example_sums(&lp, &batch.owners, batch_ex.len());
        for (i, pe) in want["per_example"].as_array().unwrap().iter().enumerate() {
            let w = pe["sum_logprob"].as_f64().unwrap();
            assert!((sums[i] - w).abs() <= 1e-3, "{model}/{mode}/{}: {} vs {w}", order[i], sums[i]);
        }
    }
}

#[test]
fn llama_matches_transformers() {
    check_model("tiny-llama");
}

#[test]
fn qwen2_matches_transformers() {
    check_model("tiny-qwen2");
}

#[test]
fn scores_do_not_depend_on_padding_or_batching() {
    let (ck, m, g) = load("tiny-llama");
    let pairs: Vec<(String, String)> = g["examples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["direction"] == "d2q")
        .map(|e| (e["passage"].as_str().unwrap().to_string(), e["query"].as_str().unwrap().to_string()))
        .collect();
    let opts = |bs| QlScoreOptions { p_max_len: 128, q_max_len: 32, batch_size: bs, ..Default::default() };
    let one = ql_scores(&m, &ck.tokenizer, &pairs, opts(1), |_| {}).unwrap();
    let all = ql_scores(&m, &ck.tokenizer, &pairs, opts(8), |_| {}).unwrap();
    for (a, b) in one.iter().zip(&all) {
        assert!((a - b).abs() < 1e-4, "batched {b} vs alone {a}");
    }
}

/// With Attention Stop the document reaches the query only through the separator: pin the
/// separator's state (at every layer's input) to another document's, and the query positions'
/// outputs become exactly that document's. Without the mask they do not.
#[test]
fn document_reaches_query_only_through_separator() {
    let (ck, m, _) = load("tiny-llama");
    let device = Default::default();
    let tok = &ck.tokenizer;
    let a =
        build_d2q(tok, "Rivers carry water from the mountains to the sea.", "where do rivers go?", 128, 32).unwrap();
    let b =
        build_d2q(tok, "Bees make honey from nectar in the hive each summer.", "where do rivers go?", 128, 32).unwrap();
    assert_eq!(a.len() - a.sep_pos, b.len() - b.sep_pos, "same query tail");
    let run = |ex: &QlExample, stop: bool, pin: Option<&Vec<Tensor<Flex, 3>>>, record: &mut Vec<Tensor<Flex, 3>>| {
        let batch = QlBatch::<Flex>::new(std::slice::from_ref(ex), LossOn::Query, tok.eos_id, stop, &device);
        let mask = if stop {
            batch.mask.clone()
        } else {
            AttentionMask::Explicit(attention_stop_mask(&[None], &[ex.len()], ex.len(), &device))
        };
        let s = ex.sep_pos;
        let h = m.forward_layers_hooked(batch.input_ids.clone(), batch.positions.clone(), &mask, &mut |layer, x| {
            let [_, _, d] = x.dims();
            record.push(x.clone().slice([0..1, s..s + 1, 0..d]));
            match pin {
                Some(states) => x.slice_assign([0..1, s..s + 1, 0..d], states[layer].clone()),
                None => x,
            }
        });
        let [_, n, d] = h.dims();
        let tail: Vec<f32> = m.norm.forward(h.slice([0..1, s + 1..n, 0..d])).into_data().to_vec().unwrap();
        tail
    };
    for stop in [true, false] {
        let mut sep_a = Vec::new();
        let out_a = run(&a, stop, None, &mut sep_a);
        let out_b_free = run(&b, stop, None, &mut Vec::new());
        let out_b_pinned = run(&b, stop, Some(&sep_a), &mut Vec::new());
        let diff = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(diff(&out_a, &out_b_free) > 1e-3, "different documents must give different query states");
        let pinned = diff(&out_a, &out_b_pinned);
        if stop {
            assert!(pinned <= 1e-4, "with Attention Stop, pinning the separator must fix the query states: {pinned}");
        } else {
            assert!(pinned > 1e-3, "without the mask, the document leaks past the separator: {pinned}");
        }
    }
}

/// The fast Attention-Stop scorer (document once, one-position KV cache per pair) equals scoring
/// each whole masked sequence, and the golden transformers scores; documents shared by several
/// queries, queries of different lengths, and a one-token (empty) query included.
#[test]
fn cached_scores_equal_full_sequences_and_transformers() {
    for model in ["tiny-llama", "tiny-qwen2"] {
        let (ck, m, g) = load(model);
        let docs = [
            "Rivers carry water from the mountains to the sea.",
            "A small cafe sells coffee and bread.",
            "The library opens at nine.",
        ];
        let queries =
            ["where do rivers go?", "coffee", "", "when does the library open and close every day of the week"];
        let mut exs = Vec::new();
        for d in docs {
            for q in queries {
                exs.push(build_d2q(&ck.tokenizer, d, q, 128, 32).unwrap());
            }
        }
        // Attention Stop (the separator cached) and plain causal attention (the whole prompt cached).
        for stop in [true, false] {
            let full = llmql_core::ql::full_sequence_scores(&m, &exs, ck.tokenizer.eos_id, 5, stop, |_| {}).unwrap();
            let mut counted = 0;
            let fast = llmql_core::ql::cached_scores(&m, &exs, ck.tokenizer.eos_id, 2, stop, |n| counted += n);
            assert_eq!(counted, exs.len());
            for (i, (a, b)) in full.iter().zip(&fast).enumerate() {
                assert!((a - b).abs() <= 1e-3, "{model} pair {i} (attention stop {stop}): full {a} vs cached {b}");
            }
        }
        // And through the public entry point against transformers' golden scores, with and without AS.
        for (key, stop) in [("ql_scores", true), ("ql_scores_no_mask", false)] {
            for s in g[key].as_array().unwrap() {
                let name = s["name"].as_str().unwrap();
                let e = g["examples"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap();
                if e["direction"] != "d2q" {
                    continue;
                }
                let title = e["title"].as_str().filter(|t| !t.is_empty());
                let passage = passage_text(title, e["text"].as_str().unwrap());
                let opts = QlScoreOptions {
                    p_max_len: e["p_max_len"].as_u64().unwrap() as usize,
                    q_max_len: e["q_max_len"].as_u64().unwrap() as usize,
                    batch_size: 4,
                    attention_stop: stop,
                    ..Default::default()
                };
                let got =
                    ql_scores(&m, &ck.tokenizer, &[(passage, e["query"].as_str().unwrap().to_string())], opts, |_| {})
                        .unwrap()[0];
                let want = s["score"].as_f64().unwrap();
                assert!((got - want).abs() <= 1e-3, "{model}/{name} ({key}): cached {got} vs transformers {want}");
            }
        }
    }
}
