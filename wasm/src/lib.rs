//! llmql in the browser: the `llmql-core` encoder (the same model code that trains natively) on
//! WebGPU through Burn's wgpu backend, or on the CPU through Burn flex when the browser has no
//! WebGPU adapter. Every device readback is asynchronous (`into_data_async`): a synchronous one
//! panics on WebGPU.
//!
//! JS API (wasm-bindgen writes the `.d.ts`):
//! - `new ModelFiles(configJson, tokenizerJson)`, `.setTokenizerConfig(bytes)`,
//!   `.addWeights(name, bytes)` (each safetensors file), `.setAdapter(adapterConfigJson, bytes)`;
//! - `await LlmqlEncoder.load(files, new EncoderOptions())`, then `encodeQuery(text)` and
//!   `encodePassage(title, text)` -> `Float32Array`; `backend` says `webgpu` or `cpu`;
//! - `new DenseIndex(npyBytes, idsText)` (an `llmql encode` output) and `search(vector, k)`.
use burn::backend::wgpu::{graphics, init_setup_async, RuntimeOptions, WgpuDevice};
use burn::backend::{Flex, WebGpu};
use burn::tensor::backend::Backend;
use burn::tensor::DType;
use js_sys::{Float32Array, Function, Promise, Reflect, Uint32Array};
use llmql_core::lora::{load_adapter_bytes, merge_lora};
use llmql_core::model::{embed_tokens_name, LoadOptions};
use llmql_core::pooling::Pooling;
use llmql_core::search::Embeddings;
use llmql_core::truncation::{Truncation, TruncationStats};
use llmql_core::{Encoder, Kind, ModelSource, Template};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(s: &str);
}
use std::path::Path;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

type Gpu = WebGpu<f32, i32, u32>;
type Cpu = Flex;

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The files of a model, as bytes the page fetched or the user dropped.
#[wasm_bindgen]
pub struct ModelFiles {
    name: String,
    config: Vec<u8>,
    tokenizer: Vec<u8>,
    tokenizer_config: Option<Vec<u8>>,
    weights: Vec<(String, Vec<u8>)>,
    adapter: Option<(String, Vec<u8>)>,
}

#[wasm_bindgen]
impl ModelFiles {
    /// `config.json` and `tokenizer.json` bytes.
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: Vec<u8>, tokenizer_json: Vec<u8>) -> ModelFiles {
        ModelFiles {
            name: "model".into(),
            config: config_json,
            tokenizer: tokenizer_json,
            tokenizer_config: None,
            weights: Vec::new(),
            adapter: None,
        }
    }

    /// A name for the model in error messages (e.g. the folder's name).
    #[wasm_bindgen(js_name = setName)]
    pub fn set_name(&mut self, name: String) {
        self.name = name;
    }

    /// `tokenizer_config.json` bytes (where the EOS token is named).
    #[wasm_bindgen(js_name = setTokenizerConfig)]
    pub fn set_tokenizer_config(&mut self, bytes: Vec<u8>) {
        self.tokenizer_config = Some(bytes);
    }

    /// One safetensors file (`model.safetensors`, or each shard of a sharded checkpoint).
    #[wasm_bindgen(js_name = addWeights)]
    pub fn add_weights(&mut self, name: String, bytes: Vec<u8>) {
        self.weights.push((name, bytes));
    }

    /// A PEFT LoRA adapter: `adapter_config.json` text and `adapter_model.safetensors` bytes. It is
    /// merged into the weights at load.
    #[wasm_bindgen(js_name = setAdapter)]
    pub fn set_adapter(&mut self, config_json: String, weights: Vec<u8>) {
        self.adapter = Some((config_json, weights));
    }
}

/// How to run the encoder. Defaults: backend `auto`, template `llmql`, 64/192 tokens, content
/// truncation, eos pooling, normalised, dtype `auto`.
#[wasm_bindgen(getter_with_clone)]
#[derive(Clone, Debug)]
pub struct EncoderOptions {
    /// `auto` (WebGPU when the browser gives a hardware adapter, else CPU), `webgpu` or `cpu`.
    pub backend: String,
    /// `llmql`, `repllama` or `raw` (as `llmql encode --template`).
    pub template: String,
    /// Maximum query tokens including the appended EOS.
    #[wasm_bindgen(js_name = queryMaxLen)]
    pub query_max_len: u32,
    /// Maximum passage tokens including the appended EOS.
    #[wasm_bindgen(js_name = passageMaxLen)]
    pub passage_max_len: u32,
    /// `content` (cut the text, keep the template's instructions) or `reference` (the reference's
    /// whole-string cut), as `llmql encode --truncation`.
    pub truncation: String,
    /// `eos` or `mean`.
    pub pooling: String,
    pub normalize: bool,
    /// `auto` (f16 on a WebGPU adapter with shader-f16, else f32), `f32` or `f16`.
    pub dtype: String,
    /// Keep the token embedding table in host memory and upload only the looked-up rows. Done
    /// anyway on WebGPU when the table is larger than the device's storage binding limit.
    #[wasm_bindgen(js_name = hostEmbeddings)]
    pub host_embeddings: bool,
}

#[wasm_bindgen]
impl EncoderOptions {
    #[wasm_bindgen(constructor)]
    pub fn new() -> EncoderOptions {
        EncoderOptions {
            backend: "auto".into(),
            template: llmql_core::defaults::TEMPLATE.name().into(),
            query_max_len: llmql_core::defaults::QUERY_MAX_LEN as u32,
            passage_max_len: llmql_core::defaults::PASSAGE_MAX_LEN as u32,
            truncation: llmql_core::defaults::TRUNCATION.name().into(),
            pooling: llmql_core::defaults::POOLING.name().into(),
            normalize: llmql_core::defaults::NORMALIZE,
            dtype: "auto".into(),
            host_embeddings: false,
        }
    }
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// What the browser's WebGPU adapter offers.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug)]
pub struct GpuInfo {
    /// The adapter has `shader-f16`.
    pub f16: bool,
    /// `maxStorageBufferBindingSize` of the adapter, in bytes.
    #[wasm_bindgen(js_name = maxStorageBufferBindingSize)]
    pub max_storage_buffer_binding_size: f64,
    /// A software adapter (`info.isFallbackAdapter`, e.g. SwiftShader): `auto` then prefers the
    /// CPU backend, which is faster than emulated WebGPU.
    pub fallback: bool,
}

// cubecl (Burn's GPU kernels) enables plane (subgroup) operations when the adapter offers
// `subgroups`, and in the browser, where wgpu reports no real subgroup sizes, it assumes planes of
// 8 to 128 lanes. SwiftShader's subgroups are 4 wide, so on such adapters the feature is hidden
// from wgpu (which then neither requests nor uses it).
#[wasm_bindgen(inline_js = r#"
export function hide_narrow_subgroups() {
  const gpu = globalThis.navigator && globalThis.navigator.gpu;
  if (!gpu || gpu.__llmqlSubgroupShim) return;
  const request = gpu.requestAdapter.bind(gpu);
  gpu.requestAdapter = async (options) => {
    const adapter = await request(options);
    const min = adapter && adapter.info ? adapter.info.subgroupMinSize : 0;
    if (adapter && adapter.features.has('subgroups') && !(min >= 8)) {
      const kept = new Set([...adapter.features].filter((f) => f !== 'subgroups' && f !== 'subgroup-size-control'));
      Object.defineProperty(adapter, 'features', { value: kept, configurable: true });
    }
    return adapter;
  };
  gpu.__llmqlSubgroupShim = true;
}
"#)]
extern "C" {
    fn hide_narrow_subgroups();
}

fn get(v: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(v, &JsValue::from_str(key)).ok().filter(|x| !x.is_undefined() && !x.is_null())
}

/// Asks `navigator.gpu` for an adapter; `undefined` when the browser has none. Burn's wgpu setup
/// panics without an adapter (and a wasm panic cannot be caught), so this runs first.
#[wasm_bindgen(js_name = probeWebGpu)]
pub async fn probe_webgpu() -> Option<GpuInfo> {
    hide_narrow_subgroups();
    let nav = get(&js_sys::global(), "navigator")?;
    let gpu = get(&nav, "gpu")?;
    let request: Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let promise: Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = JsFuture::from(promise).await.ok().filter(|a| !a.is_null() && !a.is_undefined())?;
    let f16 = get(&adapter, "features")
        .and_then(|f| {
            let has: Function = get(&f, "has")?.dyn_into().ok()?;
            has.call1(&f, &JsValue::from_str("shader-f16")).ok()
        })
        .is_some_and(|b| b.is_truthy());
    let fallback = get(&adapter, "info").and_then(|i| get(&i, "isFallbackAdapter")).is_some_and(|b| b.is_truthy());
    let max = get(&adapter, "limits")
        .and_then(|l| get(&l, "maxStorageBufferBindingSize"))
        .and_then(|m| m.as_f64())
        .unwrap_or(128.0 * 1024.0 * 1024.0);
    Some(GpuInfo { f16, max_storage_buffer_binding_size: max, fallback })
}

enum Engine {
    Gpu(Encoder<Gpu>),
    Cpu(Encoder<Cpu>),
}

/// A query/passage encoder running in the browser.
#[wasm_bindgen]
pub struct LlmqlEncoder {
    engine: Engine,
    template: Template,
    query_max_len: usize,
    passage_max_len: usize,
    truncation: Truncation,
    /// What tokenizing has cut so far (queries, passages).
    truncated: [TruncationStats; 2],
    dtype: DType,
    dim: usize,
    host_embeddings: bool,
}

fn element_bytes(dtype: DType) -> usize {
    if dtype == DType::F16 {
        2
    } else {
        4
    }
}

/// Builds the encoder on one backend: base weights, then the adapter (attached and merged).
fn build<B: Backend>(
    ckpt: &ModelSource,
    adapter: Option<(String, Vec<u8>)>,
    options: llmql_core::EncoderOptions,
    dtype: DType,
    host_embeddings: bool,
    device: &B::Device,
) -> Result<Encoder<B>, JsError> {
    let load = LoadOptions { dtype, lm_head: false, host_embeddings, compute_dtype: None };
    let enc = Encoder::<B>::load_with(ckpt, options, load, device).map_err(js_err)?;
    match adapter {
        None => Ok(enc),
        Some((cfg, weights)) => {
            let model = load_adapter_bytes(enc.model, &cfg, weights).map_err(js_err)?;
            Ok(Encoder::from_model(merge_lora(model), enc.tokenizer, enc.options, enc.host_embeddings))
        }
    }
}

#[wasm_bindgen]
impl LlmqlEncoder {
    /// Loads a model (and optional adapter) on WebGPU or the CPU, as `options.backend` asks.
    pub async fn load(files: ModelFiles, options: EncoderOptions) -> Result<LlmqlEncoder, JsError> {
        let template: Template = options.template.parse().map_err(js_err)?;
        let truncation: Truncation = options.truncation.parse().map_err(js_err)?;
        let pooling: Pooling = options.pooling.parse().map_err(js_err)?;
        let gpu = match options.backend.as_str() {
            "cpu" => None,
            "webgpu" => Some(probe_webgpu().await.ok_or_else(|| {
                JsError::new(
                    "backend `webgpu` was asked for, but this browser gives no WebGPU adapter (use `auto` or `cpu`)",
                )
            })?),
            "auto" | "" => probe_webgpu().await.filter(|g| !g.fallback),
            other => return Err(JsError::new(&format!("unknown backend {other:?} (expected auto, webgpu or cpu)"))),
        };
        let dtype = match (options.dtype.as_str(), gpu) {
            ("f32", _) => DType::F32,
            ("f16", Some(g)) if !g.f16 => {
                return Err(JsError::new("dtype `f16` was asked for, but this WebGPU adapter has no shader-f16"))
            }
            ("f16", _) => DType::F16,
            ("auto" | "", Some(g)) if g.f16 => DType::F16,
            ("auto" | "", _) => DType::F32,
            (other, _) => return Err(JsError::new(&format!("unknown dtype {other:?} (expected auto, f32 or f16)"))),
        };
        let ckpt = ModelSource::from_bytes(
            &files.name,
            &files.config,
            &files.tokenizer,
            files.tokenizer_config.as_deref(),
            files.weights,
        )
        .map_err(js_err)?;
        let core_options = llmql_core::EncoderOptions {
            template,
            max_len: options.query_max_len.max(options.passage_max_len) as usize,
            normalize: options.normalize,
            pooling,
            truncation,
        };
        let dim = ckpt.config.hidden_size;
        let (engine, host) = match gpu {
            Some(_) => {
                let device = WgpuDevice::DefaultDevice;
                let setup = init_setup_async::<graphics::WebGpu>(&device, RuntimeOptions::default()).await;
                let limit = setup.device.limits().max_storage_buffer_binding_size as u64;
                // One tensor is one storage binding: the embedding table may go to the host;
                // anything else over the limit cannot run here.
                let bytes = |name: &str| {
                    ckpt.weights
                        .info(name)
                        .map(|(shape, _)| shape.iter().product::<usize>() as u64 * element_bytes(dtype) as u64)
                        .unwrap_or(0)
                };
                let embed = embed_tokens_name(&ckpt.weights);
                let host = options.host_embeddings || bytes(&embed) > limit;
                if let Some(big) = ckpt.weights.names().into_iter().find(|n| *n != embed && bytes(n) > limit) {
                    return Err(JsError::new(&format!(
                        "tensor `{big}` needs {} bytes, over this WebGPU device's storage binding limit of {limit} bytes: use dtype f16 or backend cpu",
                        bytes(&big)
                    )));
                }
                let enc = build::<Gpu>(&ckpt, files.adapter, core_options, dtype, host, &device)?;
                (Engine::Gpu(enc), host)
            }
            None => {
                let enc = build::<Cpu>(&ckpt, files.adapter, core_options, dtype, false, &Default::default())?;
                (Engine::Cpu(enc), false)
            }
        };
        Ok(LlmqlEncoder {
            engine,
            template,
            query_max_len: options.query_max_len as usize,
            passage_max_len: options.passage_max_len as usize,
            truncation,
            truncated: Default::default(),
            dtype,
            dim,
            host_embeddings: host,
        })
    }

    /// `webgpu` or `cpu`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match self.engine {
            Engine::Gpu(_) => "webgpu".into(),
            Engine::Cpu(_) => "cpu".into(),
        }
    }

    /// The compute dtype: `f32` or `f16`.
    #[wasm_bindgen(getter)]
    pub fn dtype(&self) -> String {
        if self.dtype == DType::F16 { "f16" } else { "f32" }.into()
    }

    /// The embedding dimension.
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether token embeddings are looked up on the host (see `EncoderOptions.hostEmbeddings`).
    #[wasm_bindgen(getter, js_name = hostEmbeddings)]
    pub fn host_embeddings(&self) -> bool {
        self.host_embeddings
    }

    /// How many texts tokenizing has cut to the length limit so far (queries and passages).
    #[wasm_bindgen(getter, js_name = truncatedTexts)]
    pub fn truncated_texts(&self) -> usize {
        self.truncated.iter().map(|s| s.counts().1).sum()
    }

    /// The token ids the encoder reads for a query (template, special tokens, EOS).
    #[wasm_bindgen(js_name = tokenizeQuery)]
    pub fn tokenize_query(&self, text: &str) -> Result<Uint32Array, JsError> {
        let ids = self.tokenize(Kind::Query, None, text)?;
        Ok(Uint32Array::from(&ids[..]))
    }

    /// The (normalised) embedding of a query.
    #[wasm_bindgen(js_name = encodeQuery)]
    pub async fn encode_query(&self, text: String) -> Result<Float32Array, JsError> {
        self.encode(Kind::Query, None, &text).await
    }

    /// The (normalised) embedding of a passage; `title` may be empty.
    #[wasm_bindgen(js_name = encodePassage)]
    pub async fn encode_passage(&self, title: String, text: String) -> Result<Float32Array, JsError> {
        self.encode(Kind::Passage, Some(&title), &text).await
    }
}

impl LlmqlEncoder {
    fn tokenize(&self, kind: Kind, title: Option<&str>, text: &str) -> Result<Vec<u32>, JsError> {
        let max_len = match kind {
            Kind::Query => self.query_max_len,
            Kind::Passage => self.passage_max_len,
        };
        let parts = self.template.parts(kind, title, text);
        let tok = match &self.engine {
            Engine::Gpu(e) => &e.tokenizer,
            Engine::Cpu(e) => &e.tokenizer,
        };
        let t = tok.encode_input(&parts, max_len, self.truncation).map_err(js_err)?;
        self.truncated[kind as usize].record(t.full_len(), t.cut_tokens);
        if t.cut_tokens > 0 {
            let (n, cut, most) = self.truncated[kind as usize].counts();
            console_warn(&format!(
                "llmql: a {} was cut by {} tokens to {max_len} ({} truncation); {cut} of {n} so far, by up to {most}",
                kind.name(),
                t.cut_tokens,
                self.truncation.name()
            ));
        }
        Ok(t.ids)
    }

    async fn encode(&self, kind: Kind, title: Option<&str>, text: &str) -> Result<Float32Array, JsError> {
        let ids = vec![self.tokenize(kind, title, text)?];
        let rows = match &self.engine {
            Engine::Gpu(e) => e.embed_ids_to_vec_async(&ids).await,
            Engine::Cpu(e) => e.embed_ids_to_vec_async(&ids).await,
        }
        .map_err(js_err)?;
        Ok(Float32Array::from(&rows[0][..]))
    }
}

/// One search result.
#[wasm_bindgen(getter_with_clone)]
#[derive(Clone, Debug)]
pub struct SearchHit {
    pub id: String,
    pub score: f32,
}

/// An exact inner-product index over an `llmql encode` output, searched on the CPU (so its size
/// is bounded by wasm memory, not by a WebGPU binding).
#[wasm_bindgen]
pub struct DenseIndex {
    embeddings: Embeddings,
}

#[wasm_bindgen]
impl DenseIndex {
    /// `embeddings.npy` bytes and `ids.txt` text.
    #[wasm_bindgen(constructor)]
    pub fn new(npy: &[u8], ids: &str) -> Result<DenseIndex, JsError> {
        let embeddings =
            Embeddings::from_bytes(npy, ids, Path::new("embeddings.npy"), Path::new("ids.txt")).map_err(js_err)?;
        Ok(DenseIndex { embeddings })
    }

    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.embeddings.rows()
    }

    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.embeddings.dim
    }

    /// The `k` best passages by inner product, best first (ties by id, as `llmql search`).
    pub fn search(&self, vector: &[f32], k: usize) -> Result<Vec<SearchHit>, JsError> {
        Ok(self
            .embeddings
            .search_one(vector, k)
            .map_err(js_err)?
            .into_iter()
            .map(|(score, id)| SearchHit { id, score })
            .collect())
    }
}

/// Runs the encoder's building blocks (matmul, reductions, softmax, gather, attention, the full
/// model on random weights is not needed) on WebGPU and on the CPU and returns, as JSON, the largest
/// difference of each: a diagnostic for a browser whose WebGPU results look wrong.
#[wasm_bindgen(js_name = selfTest)]
pub async fn self_test(only: Option<String>) -> Result<String, JsError> {
    use burn::tensor::{Distribution, Int, Tensor, TensorData};
    let device = WgpuDevice::DefaultDevice;
    probe_webgpu().await.ok_or_else(|| JsError::new("no WebGPU adapter"))?;
    init_setup_async::<graphics::WebGpu>(&device, RuntimeOptions::default()).await;
    let cpu = Default::default();
    let mut report = serde_json::Map::new();
    let a_cpu = Tensor::<Cpu, 3>::random([2, 5, 64], Distribution::Normal(0.0, 1.0), &cpu);
    let w_cpu = Tensor::<Cpu, 2>::random([64, 96], Distribution::Normal(0.0, 0.2), &cpu);
    let a_data = a_cpu.to_data();
    let w_data = w_cpu.to_data();
    let a_gpu = Tensor::<Gpu, 3>::from_data(a_data.clone(), &device);
    let w_gpu = Tensor::<Gpu, 2>::from_data(w_data.clone(), &device);
    async fn diff<const D: usize>(c: Tensor<Cpu, D>, g: Tensor<Gpu, D>) -> Result<f64, JsError> {
        let g = g.into_data_async().await.map_err(|e| JsError::new(&format!("{e:?}")))?;
        let c = c.into_data();
        let g: Vec<f32> = g.convert::<f32>().to_vec().unwrap();
        let c: Vec<f32> = c.convert::<f32>().to_vec().unwrap();
        if g.len() != c.len() {
            return Ok(f64::INFINITY);
        }
        Ok(g.iter().zip(&c).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max))
    }
    let want = |k: &str| only.as_deref().is_none_or(|o| o == k);
    if want("identity") {
        let v = diff(a_cpu.clone(), a_gpu.clone()).await?;
        report.insert("identity".into(), serde_json::json!(v));
    }
    if want("matmul") {
        let v = diff(a_cpu.clone().matmul(w_cpu.clone().unsqueeze()), a_gpu.clone().matmul(w_gpu.clone().unsqueeze()))
            .await?;
        report.insert("matmul".into(), serde_json::json!(v));
    }
    if want("matmul2d") {
        let c = a_cpu.clone().reshape([10, 64]);
        let g = a_gpu.clone().reshape([10, 64]);
        let v = diff(c.matmul(w_cpu.clone()), g.matmul(w_gpu.clone())).await?;
        report.insert("matmul2d".into(), serde_json::json!(v));
    }
    if want("matmul_batched") {
        let v = diff(
            a_cpu.clone().matmul(w_cpu.clone().unsqueeze::<3>().repeat_dim(0, 2)),
            a_gpu.clone().matmul(w_gpu.clone().unsqueeze::<3>().repeat_dim(0, 2)),
        )
        .await?;
        report.insert("matmul_batched".into(), serde_json::json!(v));
    }
    if want("matmul_square") {
        let c = Tensor::<Cpu, 2>::random([64, 64], Distribution::Normal(0.0, 1.0), &cpu);
        let g = Tensor::<Gpu, 2>::from_data(c.to_data(), &device);
        let v = diff(c.clone().matmul(c), g.clone().matmul(g)).await?;
        report.insert("matmul_square".into(), serde_json::json!(v));
    }
    if want("sum_dim") {
        let v = diff(a_cpu.clone().sum_dim(2), a_gpu.clone().sum_dim(2)).await?;
        report.insert("sum_dim".into(), serde_json::json!(v));
    }
    if want("mean_dim") {
        let v = diff(a_cpu.clone().powf_scalar(2.0).mean_dim(2), a_gpu.clone().powf_scalar(2.0).mean_dim(2)).await?;
        report.insert("mean_dim".into(), serde_json::json!(v));
    }
    if want("sqrt") {
        let v = diff(a_cpu.clone().abs().sqrt(), a_gpu.clone().abs().sqrt()).await?;
        report.insert("sqrt".into(), serde_json::json!(v));
    }
    if want("softmax") {
        let v = diff(
            burn::tensor::activation::softmax(a_cpu.clone(), 2),
            burn::tensor::activation::softmax(a_gpu.clone(), 2),
        )
        .await?;
        report.insert("softmax".into(), serde_json::json!(v));
    }
    if want("silu") {
        let v =
            diff(burn::tensor::activation::silu(a_cpu.clone()), burn::tensor::activation::silu(a_gpu.clone())).await?;
        report.insert("silu".into(), serde_json::json!(v));
    }
    let ids = TensorData::new(vec![3i64, 1, 0, 7, 2, 9], [2, 3]);
    let table = Tensor::<Cpu, 2>::random([10, 64], Distribution::Normal(0.0, 1.0), &cpu);
    let table_g = Tensor::<Gpu, 2>::from_data(table.to_data(), &device);
    if want("embedding") {
        let v = diff(
            burn::tensor::module::embedding(table, Tensor::<Cpu, 2, Int>::from_data(ids.clone(), &cpu)),
            burn::tensor::module::embedding(table_g, Tensor::<Gpu, 2, Int>::from_data(ids, &device)),
        )
        .await?;
        report.insert("embedding".into(), serde_json::json!(v));
    }
    let q = a_cpu.clone().reshape([2, 5, 4, 16]).swap_dims(1, 2);
    let qg = a_gpu.clone().reshape([2, 5, 4, 16]).swap_dims(1, 2);
    let mask_c =
        Tensor::<Cpu, 2, burn::tensor::Bool>::tril_mask([5, 5], 0, &cpu).reshape([1, 1, 5, 5]).expand([2, 4, 5, 5]);
    let mask_g =
        Tensor::<Gpu, 2, burn::tensor::Bool>::tril_mask([5, 5], 0, &device).reshape([1, 1, 5, 5]).expand([2, 4, 5, 5]);
    if want("attention_mask") {
        let v = diff(
            burn::tensor::module::attention(q.clone(), q.clone(), q.clone(), Some(mask_c), None, Default::default()),
            burn::tensor::module::attention(qg.clone(), qg.clone(), qg.clone(), Some(mask_g), None, Default::default()),
        )
        .await?;
        report.insert("attention_mask".into(), serde_json::json!(v));
    }
    let causal = burn::tensor::ops::AttentionModuleOptions { scale: None, softcap: None, is_causal: true };
    if want("attention_causal") {
        let v = diff(
            burn::tensor::module::attention(q.clone(), q.clone(), q, None, None, causal),
            burn::tensor::module::attention(qg.clone(), qg.clone(), qg, None, None, causal),
        )
        .await?;
        report.insert("attention_causal".into(), serde_json::json!(v));
    }
    Ok(serde_json::Value::Object(report).to_string())
}
