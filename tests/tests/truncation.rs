//! Truncation (core/src/truncation.rs): content truncation keeps the template's instructions and
//! EOS; the reference's whole-string cut stays reachable; texts that fit are untouched; the work
//! is bounded by the limit, not the text; and the default lengths keep every fixture query whole
//! with the default model's tokenizer.
use llmql_core::defaults::{PASSAGE_MAX_LEN as DEFAULT_PASSAGE_MAX_LEN, QUERY_MAX_LEN as DEFAULT_QUERY_MAX_LEN};
use llmql_core::template::TemplateParts;
use llmql_core::truncation::Truncation;
use llmql_core::{Kind, ModelSource, Template};
use llmql_tests::fixture;
use std::path::Path;

const LONG: &str = "Rivers carry water from the mountains to the sea, cutting valleys, moving sand and gravel, \
    and feeding the wetlands and deltas where they finally slow down and spread out into many channels.";

fn models() -> Vec<ModelSource> {
    // A Llama (BOS added by the post-processor, SentencePiece-style BPE) and a Qwen2 (byte-level BPE,
    // no BOS) tokenizer.
    ["tiny-llama", "tiny-qwen2"].iter().map(|m| ModelSource::open(&fixture(m)).unwrap()).collect()
}

fn ends_with(ids: &[u32], tail: &[u32]) -> bool {
    ids.len() >= tail.len() && &ids[ids.len() - tail.len()..] == tail
}

#[test]
fn content_truncation_keeps_prefix_suffix_and_eos() {
    for ck in models() {
        let tok = &ck.tokenizer;
        for (template, kind) in
            [(Template::Llmql, Kind::Query), (Template::Llmql, Kind::Passage), (Template::Repllama, Kind::Passage)]
        {
            let parts = template.parts(kind, Some("Rivers"), LONG);
            let full = tok.encode_full(&parts.joined()).unwrap();
            let prefix_only =
                tok.encode_full(&TemplateParts { content: String::new(), ..parts.clone() }.joined()).unwrap();
            // Room for the instructions and a few content tokens, far less than the whole text.
            let max_len = prefix_only.len() + 8;
            assert!(full.len() + 1 > max_len + 10, "the fixture text must need cutting");
            let t = tok.encode_input(&parts, max_len, Truncation::Content).unwrap();
            assert_eq!(t.ids.len(), max_len, "{template:?}/{kind:?}: cut to exactly max_len");
            assert_eq!(*t.ids.last().unwrap(), tok.eos_id);
            assert_eq!(t.cut_tokens, full.len() + 1 - max_len, "{template:?}/{kind:?}: cut count");
            // The instruction suffix survives (its tokens as the whole text tokenizes them).
            let suffix_ids = tok.encode_plain(&parts.suffix).unwrap();
            if !parts.suffix.is_empty() {
                let body = &t.ids[..t.ids.len() - 1];
                assert!(
                    ends_with(body, &full[full.len() - suffix_ids.len()..]),
                    "{template:?}/{kind:?}: the suffix was cut: {body:?}"
                );
            }
            // The prefix survives (all but its last token, which may merge with the content's first).
            let prefix_ids = tok.encode_full(&parts.prefix).unwrap();
            let k = prefix_ids.len() - 1;
            assert_eq!(&t.ids[..k], &prefix_ids[..k], "{template:?}/{kind:?}: the prefix was cut");
            // The reference's cut loses the suffix (what content truncation exists to avoid).
            let r = tok.encode_input(&parts, max_len, Truncation::Reference).unwrap();
            assert_eq!(r.ids.len(), max_len);
            assert_eq!(&r.ids[..max_len - 1], &full[..max_len - 1], "reference: the first max_len - 1 tokens");
            if !parts.suffix.is_empty() {
                assert_ne!(r.ids, t.ids);
            }
        }
    }
}

#[test]
fn texts_that_fit_are_identical_in_both_modes() {
    for ck in models() {
        let tok = &ck.tokenizer;
        let parts = Template::Llmql.parts(Kind::Passage, Some("T"), "A short body.");
        let n = tok.encode_full(&parts.joined()).unwrap().len() + 1;
        for max_len in [n, n + 5, 512] {
            let c = tok.encode_input(&parts, max_len, Truncation::Content).unwrap();
            let r = tok.encode_input(&parts, max_len, Truncation::Reference).unwrap();
            assert_eq!(c, r);
            assert_eq!(c.cut_tokens, 0);
            assert_eq!(c.ids, tok.encode_with_eos(&parts.joined(), max_len).unwrap());
        }
    }
}

#[test]
fn a_template_longer_than_the_limit_is_an_error() {
    for ck in models() {
        let parts = Template::Llmql.parts(Kind::Query, None, "q");
        let err = ck.tokenizer.encode_input(&parts, 4, Truncation::Content).unwrap_err().to_string();
        assert!(err.contains("template alone takes"), "{err}");
        // The reference's cut accepts it (and cuts into the instruction).
        assert_eq!(ck.tokenizer.encode_input(&parts, 4, Truncation::Reference).unwrap().ids.len(), 4);
    }
}

#[test]
fn work_is_bounded_by_the_limit_not_the_text() {
    // A 4 MB line: tokenized whole, this takes seconds and gigabytes; bounded, milliseconds.
    let huge: String = LONG.repeat(4 << 20 >> 8);
    for ck in models() {
        let tok = &ck.tokenizer;
        for mode in [Truncation::Content, Truncation::Reference] {
            let parts = Template::Llmql.parts(Kind::Passage, None, &huge);
            let start = std::time::Instant::now();
            let t = tok.encode_input(&parts, 64, mode).unwrap();
            let secs = start.elapsed().as_secs_f64();
            // Same tokens as a text that is merely long.
            let short = Template::Llmql.parts(Kind::Passage, None, &LONG.repeat(20));
            assert_eq!(t.ids, tok.encode_input(&short, 64, mode).unwrap().ids, "{mode:?}");
            // Only a prefix of the text was read: the count is a lower bound.
            assert!(t.cut_tokens > 50, "{mode:?}: {}", t.cut_tokens);
            assert!(secs < 2.0, "{mode:?}: {secs:.2} s for a 4 MB text");
        }
    }
}

/// Queries of every fixture collection, in each template, at the default query length: nothing cut
/// with the default model's tokenizer (SmolLM2); the quickstart's passages fit the default passage
/// length too.
#[test]
fn default_lengths_keep_every_fixture_query_whole() {
    let Some(gguf) = llmql_tests::smollm2_gguf() else {
        return;
    };
    let ck = ModelSource::open(&gguf).unwrap();
    let tok = &ck.tokenizer;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lines = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut checked = 0;
    for col in ["tests/fixtures/collection", "native-cli/assets/quickstart", "native-cli/assets/medical"] {
        for q in lines(&root.join(col).join("queries.jsonl")) {
            for template in [Template::Llmql, Template::Repllama, Template::Raw] {
                let parts = template.parts(Kind::Query, None, q["text"].as_str().unwrap());
                let t = tok.encode_input(&parts, DEFAULT_QUERY_MAX_LEN, Truncation::Content).unwrap();
                assert_eq!(
                    t.cut_tokens, 0,
                    "{col}: query {} loses {} tokens in the {template:?} template",
                    q["_id"], t.cut_tokens
                );
                checked += 1;
            }
        }
    }
    for p in lines(&root.join("native-cli/assets/quickstart/corpus.jsonl")) {
        let parts = Template::Llmql.parts(Kind::Passage, p["title"].as_str(), p["text"].as_str().unwrap());
        let t = tok.encode_input(&parts, DEFAULT_PASSAGE_MAX_LEN, Truncation::Content).unwrap();
        assert_eq!(t.cut_tokens, 0, "quickstart passage {} is cut", p["_id"]);
    }
    assert!(checked > 1000, "{checked}");
}
