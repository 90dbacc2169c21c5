//! Loading a checkpoint that does not match its config.json fails with one error that lists every
//! problem tensor by name with expected and found shapes.
#![cfg(feature = "flex")]
use burn::backend::Flex;
use llmql_core::model::LoadOptions;
use llmql_core::ModelSource;
use llmql_tests::fixture;

fn copy(src: &std::path::Path, dst: &std::path::Path, names: &[&str]) {
    for n in names {
        std::fs::copy(src.join(n), dst.join(n)).unwrap();
    }
}

#[test]
fn mismatched_weights_are_listed_together() {
    let dir = tempfile::tempdir().unwrap();
    // Llama's config and tokenizer with Qwen2's weights: wrong vocab, extra biases, no lm_head.
    copy(&fixture("tiny-llama"), dir.path(), &["config.json", "tokenizer.json", "tokenizer_config.json"]);
    copy(&fixture("tiny-qwen2"), dir.path(), &["model.safetensors"]);
    let ck = ModelSource::open(dir.path()).unwrap();
    let err = ck
        .load_model::<Flex>(
            LoadOptions { dtype: burn::tensor::DType::F32, lm_head: true, host_embeddings: false, compute_dtype: None },
            &Default::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("wrong shape: `model.embed_tokens.weight` expected [408, 64], found [308, 64]"), "{err}");
    assert!(err.contains("unexpected: `model.layers.0.self_attn.q_proj.bias` (shape [64])"), "{err}");
    assert!(err.contains("missing: `lm_head.weight` (expected shape [408, 64])"), "{err}");
    assert!(
        err.contains("wrong shape: `model.layers.1.self_attn.q_proj.weight` expected [128, 64], found [64, 64]"),
        "{err}"
    );
}

#[test]
fn missing_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = ModelSource::open(&dir.path().join("nope")).err().unwrap().to_string();
    assert!(err.contains("nope") && err.contains("not found"), "{err}");
    copy(&fixture("tiny-llama"), dir.path(), &["config.json"]);
    let err = ModelSource::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    copy(&fixture("tiny-llama"), dir.path(), &["tokenizer.json", "tokenizer_config.json"]);
    let err = ModelSource::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("no model.safetensors"), "{err}");
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt_neox"}"#).unwrap();
    let err = ModelSource::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("config.json") && err.contains("unsupported model type \"gpt_neox\""), "{err}");
}
