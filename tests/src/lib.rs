//! Shared helpers for llmql's cross-backend conformance and golden parity tests.
//!
//! Golden values come from `tests/fixtures/make_fixtures.py` (transformers, PyTorch); the tests
//! never need Python.
use burn::tensor::backend::Backend;
use llmql_core::{Encoder, EncoderOptions, Kind, ModelSource, Template};
use std::path::PathBuf;

pub const FAMILIES: [&str; 3] = ["tiny-llama", "tiny-mistral", "tiny-qwen2"];

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The quickstart's model (SmolLM2-135M-Instruct Q4_1 GGUF) where `scripts/setup.sh` caches it
/// (`LLMQL_SMOLLM2_GGUF` overrides). `None` (the test skips) when it is absent, unless
/// `LLMQL_REQUIRE_SMOLLM2` is set (CI fetches the model first and sets it, so there it cannot skip).
pub fn smollm2_gguf() -> Option<PathBuf> {
    let path = match std::env::var_os("LLMQL_SMOLLM2_GGUF") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("LLMQL_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/llmql"))
            .join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    if path.exists() {
        return Some(path);
    }
    assert!(std::env::var_os("LLMQL_REQUIRE_SMOLLM2").is_none(), "{} is missing", path.display());
    println!("skipped: {} not present (run scripts/setup.sh)", path.display());
    None
}

#[derive(Debug, Clone)]
pub struct GoldenCase {
    pub name: String,
    pub kind: Kind,
    pub template: Template,
    pub title: Option<String>,
    pub text: String,
    pub max_len: usize,
    pub input_ids: Vec<u32>,
    pub embedding: Vec<f32>,
    pub embedding_raw: Vec<f32>,
}

pub struct Golden {
    pub eos_id: u32,
    pub bos_added: bool,
    pub cases: Vec<GoldenCase>,
}

pub fn golden(model: &str) -> Golden {
    let p = fixture(model).join("golden.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let floats = |x: &serde_json::Value| -> Vec<f32> {
        x.as_array().unwrap().iter().map(|f| f.as_f64().unwrap() as f32).collect()
    };
    let cases = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| GoldenCase {
            name: c["name"].as_str().unwrap().into(),
            kind: c["kind"].as_str().unwrap().parse().unwrap(),
            template: c["template"].as_str().unwrap().parse().unwrap(),
            title: c["title"].as_str().map(str::to_string),
            text: c["text"].as_str().unwrap().into(),
            max_len: c["max_len"].as_u64().unwrap() as usize,
            input_ids: c["input_ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect(),
            embedding: floats(&c["embedding"]),
            embedding_raw: floats(&c["embedding_raw"]),
        })
        .collect();
    Golden { eos_id: v["eos_id"].as_u64().unwrap() as u32, bos_added: v["bos_added"].as_bool().unwrap(), cases }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// An encoder for a fixture model on `device` (f32 compute), truncating as the reference does (the
/// golden values come from transformers' whole-string truncation).
pub fn encoder<B: Backend>(
    model: &str,
    template: Template,
    max_len: usize,
    normalize: bool,
    device: &B::Device,
) -> Encoder<B> {
    let ck = ModelSource::open(&fixture(model)).unwrap();
    Encoder::load(
        &ck,
        EncoderOptions {
            template,
            max_len,
            normalize,
            truncation: llmql_core::truncation::Truncation::Reference,
            ..Default::default()
        },
        burn::tensor::DType::F32,
        device,
    )
    .unwrap()
}

/// Embeds every golden case of `model` one at a time and in one padded batch per (template,
/// max_len) group; returns `(case, single, batched)` triples.
pub fn embed_golden_cases<B: Backend>(model: &str, device: &B::Device) -> Vec<(GoldenCase, Vec<f32>, Vec<f32>)> {
    let g = golden(model);
    let mut out = Vec::new();
    for case in &g.cases {
        let enc = encoder::<B>(model, case.template, case.max_len, true, device);
        let ids = enc.tokenize(case.kind, case.title.as_deref(), &case.text).unwrap();
        assert_eq!(ids, case.input_ids, "{model}/{}: token ids differ from transformers", case.name);
        let single = enc.embed_ids_to_vec(std::slice::from_ref(&ids)).remove(0);
        // The same sequence inside a padded batch with a longer and a shorter neighbour.
        let long: Vec<u32> = ids.iter().chain(ids.iter()).chain(ids.iter()).copied().collect();
        let short = vec![ids[0], g.eos_id];
        let batched = enc.embed_ids_to_vec(&[long, ids, short]).remove(1);
        out.push((case.clone(), single, batched));
    }
    out
}

/// Gives every trainable parameter fixed values (a function of its id and index, no RNG): LoRA's
/// B becomes non-zero, so adapters (and their dropout) matter, and every test thread gets the same
/// model regardless of Burn's shared RNG.
pub fn fill_trainable<B: burn::tensor::backend::AutodiffBackend, M: burn::module::Module<B>>(m: M) -> M {
    use burn::module::{ModuleMapper, Param};
    use burn::tensor::{Tensor, TensorData};
    struct Fill;
    impl<B: burn::tensor::backend::AutodiffBackend> ModuleMapper<B> for Fill {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, t, mapper) = p.consume();
            if !t.is_require_grad() {
                return Param::from_mapped_value(id, t, mapper);
            }
            let shape = t.shape();
            let seed = id.val() % 1000;
            let v: Vec<f32> =
                (0..shape.num_elements()).map(|i| (((seed + i as u64) as f32) * 0.7).sin() * 0.05).collect();
            let t = Tensor::<B, D>::from_data(TensorData::new(v, shape), (&t.device(), t.dtype())).require_grad();
            Param::from_mapped_value(id, t, mapper)
        }
    }
    m.map(&mut Fill)
}
