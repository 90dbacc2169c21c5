//! LoRA, factored: `y = x W + s · dropout(x) A B` with `s = alpha / r`, A `[in, r]`, B `[r, out]`.
//! W + s·A·B is never materialised during training; base weights are frozen (no gradients, never
//! copied per step). Saved and loaded in PEFT's format: `adapter_config.json` and
//! `adapter_model.safetensors` with `lora_A` (`[r, in]`) and `lora_B` (`[out, r]`) per module.
//!
//! PEFT names the tensors after the model class it wrapped ([`AdapterLayout`]):
//! `base_model.model.layers.N.<module>.lora_A.weight` on `AutoModel` (Tevatron, RepLLaMA, the LLM-QL
//! reference's stage 2) and `base_model.model.model.layers.N...` on `AutoModelForCausalLM`; and a
//! state dict saved by hand keeps the adapter name (`lora_A.default.weight`). PEFT applies a file
//! only on the class it was made on (elsewhere it warns and applies nothing), so llmql reads every
//! one of these, decided from the keys ([`StoredLayout::detect`]), and writes the layout asked for.
use crate::error::{Error, Result};
use crate::model::{DecoderModel, Linear};
use crate::weights::{named_param, WeightFiles};
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{backend::Backend, DType, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const DEFAULT_TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
    /// rsLoRA: scale `alpha / sqrt(r)` instead of `alpha / r` (PEFT's `use_rslora`).
    #[serde(default)]
    pub use_rslora: bool,
    /// How the adapter is written ([`save_adapter`]); reading decides from the file's keys.
    #[serde(default)]
    pub layout: AdapterLayout,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 32,
            lora_alpha: 64.0,
            lora_dropout: 0.1,
            target_modules: DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect(),
            use_rslora: false,
            layout: AdapterLayout::default(),
        }
    }
}

/// Which model class PEFT wrapped, as an adapter file's tensor names show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdapterLayout {
    /// PEFT on `AutoModel` (a bare `LlamaModel`/`Qwen2Model`/...), task type FEATURE_EXTRACTION:
    /// `base_model.model.layers.N.<module>.lora_A.weight`. What Tevatron, RepLLaMA and the LLM-QL
    /// reference's stage 2 write and what their users load; llmql's default for `train`.
    #[default]
    AutoModel,
    /// PEFT on `AutoModelForCausalLM` (with `lm_head`), task type CAUSAL_LM:
    /// `base_model.model.model.layers.N.<module>.lora_A.weight`. llmql's default for `ql-train`,
    /// whose product is a causal LM (query likelihood needs the LM head).
    CausalLm,
}

impl AdapterLayout {
    /// Key prefix in front of `layers.N...`.
    fn prefix(self) -> &'static str {
        match self {
            AdapterLayout::AutoModel => "base_model.model.",
            AdapterLayout::CausalLm => "base_model.model.model.",
        }
    }

    /// PEFT's `task_type` written with this layout.
    pub fn task_type(self) -> &'static str {
        match self {
            AdapterLayout::AutoModel => "FEATURE_EXTRACTION",
            AdapterLayout::CausalLm => "CAUSAL_LM",
        }
    }

    /// The Python class PEFT must wrap to load this layout.
    pub fn python_class(self) -> &'static str {
        match self {
            AdapterLayout::AutoModel => "AutoModel",
            AdapterLayout::CausalLm => "AutoModelForCausalLM",
        }
    }
}

/// The key layout of a stored adapter: [`AdapterLayout`] and the adapter name PEFT's own state
/// dict keeps in the keys (`lora_A.default.weight`), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLayout {
    pub layout: AdapterLayout,
    pub adapter_name: Option<String>,
}

/// One adapter tensor name split into its parts.
struct AdapterKey<'a> {
    layout: AdapterLayout,
    /// `lora_A` or `lora_B`.
    factor: &'a str,
    adapter_name: Option<&'a str>,
}

impl<'a> AdapterKey<'a> {
    /// `base_model.model.[model.]layers.N.<module>.lora_{A,B}[.<adapter name>].weight`, else `None`.
    fn parse(key: &'a str) -> Option<Self> {
        let rest = key.strip_suffix(".weight")?;
        let (layout, rest) = if let Some(r) = rest.strip_prefix("base_model.model.model.") {
            (AdapterLayout::CausalLm, r)
        } else {
            (AdapterLayout::AutoModel, rest.strip_prefix("base_model.model.")?)
        };
        if !rest.starts_with("layers.") {
            return None;
        }
        let (head, last) = rest.rsplit_once('.')?;
        let (factor, adapter_name) = if last == "lora_A" || last == "lora_B" {
            (last, None)
        } else {
            let (_module, factor) = head.rsplit_once('.')?;
            let name_ok = !last.is_empty() && last.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !(factor == "lora_A" || factor == "lora_B") || !name_ok {
                return None;
            }
            (factor, Some(last))
        };
        Some(Self { layout, factor, adapter_name })
    }
}

impl StoredLayout {
    /// Decides the layout from an adapter file's tensor names: every name must be a LoRA factor
    /// of `layers.N.<module>` in one layout with one adapter name (or none). `origin` names the
    /// file in the error, which lists the names that fit no layout.
    pub fn detect(names: &[String], origin: &Path) -> Result<Self> {
        let expected = "expected PEFT LoRA keys `base_model.model.layers.N.<module>.lora_A[.<adapter>].weight` \
            (AutoModel, as Tevatron writes them) or `base_model.model.model.layers.N.<module>.lora_A[.<adapter>].weight` \
            (AutoModelForCausalLM)";
        let list = |v: &[&String]| {
            let shown: Vec<String> = v.iter().take(5).map(|k| format!("`{k}`")).collect();
            let more = if v.len() > 5 { format!(" and {} more", v.len() - 5) } else { String::new() };
            format!("{}{more}", shown.join(", "))
        };
        let parsed: Vec<(&String, Option<AdapterKey>)> = names.iter().map(|n| (n, AdapterKey::parse(n))).collect();
        let misfits: Vec<&String> = parsed.iter().filter(|(_, k)| k.is_none()).map(|(n, _)| *n).collect();
        if names.is_empty() {
            return Err(Error::Weights { path: origin.into(), message: format!("no tensors ({expected})") });
        }
        if !misfits.is_empty() {
            return Err(Error::Weights {
                path: origin.into(),
                message: format!("tensor names fit no adapter layout: {}; {expected}", list(&misfits)),
            });
        }
        let keys: Vec<(&String, AdapterKey)> = parsed.into_iter().map(|(n, k)| (n, k.expect("checked"))).collect();
        let first = &keys[0].1;
        let stored = StoredLayout { layout: first.layout, adapter_name: first.adapter_name.map(str::to_string) };
        let other: Vec<&String> = keys
            .iter()
            .filter(|(_, k)| k.layout != stored.layout || k.adapter_name != stored.adapter_name.as_deref())
            .map(|(n, _)| *n)
            .collect();
        if !other.is_empty() {
            return Err(Error::Weights {
                path: origin.into(),
                message: format!(
                    "tensor names mix adapter layouts or adapter names: `{}` but also {}; {expected}",
                    keys[0].0,
                    list(&other)
                ),
            });
        }
        Ok(stored)
    }

    /// The stored name of factor `factor` (`lora_A`/`lora_B`) of `module` (`layers.N.self_attn.q_proj`).
    fn key(&self, module: &str, factor: &str) -> String {
        match &self.adapter_name {
            Some(a) => format!("{}{module}.{factor}.{a}.weight", self.layout.prefix()),
            None => format!("{}{module}.{factor}.weight", self.layout.prefix()),
        }
    }
}

/// Largest LoRA rank accepted (PEFT's ranks are 8 to 256; a rank is at most a layer's width).
pub const MAX_LORA_R: usize = 1 << 16;

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Checks every value before any tensor is built from it: `r` in 1..=[`MAX_LORA_R`], a finite
    /// `lora_alpha`, `lora_dropout` in [0, 1), known target modules. `origin` (the
    /// `adapter_config.json`, or the flags) names it in the error.
    pub fn validate(&self, origin: &Path) -> Result<()> {
        if self.r == 0 || self.r > MAX_LORA_R {
            return Err(Error::config(origin, format!("field `r`: {} is out of range (1 to {MAX_LORA_R})", self.r)));
        }
        if !self.lora_alpha.is_finite() {
            return Err(Error::config(
                origin,
                format!("field `lora_alpha`: {} is not a finite number", self.lora_alpha),
            ));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(Error::config(origin, format!("field `lora_dropout`: {} is not in [0, 1)", self.lora_dropout)));
        }
        if self.target_modules.is_empty() {
            return Err(Error::config(origin, "field `target_modules`: no module named"));
        }
        for t in &self.target_modules {
            if !DEFAULT_TARGETS.contains(&t.as_str()) {
                return Err(Error::config(
                    origin,
                    format!(
                        "field `target_modules`: {t:?} is not a linear of this model (expected some of {})",
                        DEFAULT_TARGETS.join(",")
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// `[d_in, r]`.
    pub lora_a: Param<Tensor<B, 2>>,
    /// `[r, d_out]`.
    pub lora_b: Param<Tensor<B, 2>>,
    pub dropout: Dropout,
    pub scale: f64,
}

impl<B: Backend> LoraAdapter<B> {
    /// PEFT's initialisation: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform, a = sqrt 5), B = 0,
    /// so a fresh adapter leaves the model unchanged. A is drawn on the host from its own stream,
    /// seeded by `seed` and the weight's name: the same on every device and backend, and
    /// independent of any other use of the backend's RNG (data-parallel peers agree).
    pub fn new(
        name: &str,
        d_in: usize,
        d_out: usize,
        cfg: &LoraConfig,
        seed: u64,
        device: &B::Device,
        dtype: burn::tensor::DType,
    ) -> Self {
        use rand::{Rng, SeedableRng};
        let bound = 1.0 / (d_in as f64).sqrt();
        let a_name = format!("{name}.lora_A.weight");
        let stream = seed ^ crate::weights::param_id(&a_name).val().rotate_left(17);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(stream);
        let values: Vec<f32> = (0..d_in * cfg.r).map(|_| rng.random_range(-bound..bound) as f32).collect();
        // Adapters are kept and computed in f32 whatever the base's dtype (bf16/f16 bases train
        // f32 LoRA weights, as PEFT does with autocast).
        let _ = dtype;
        let a = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(values, [d_in, cfg.r]), (device, DType::F32));
        let b = Tensor::<B, 2>::zeros([cfg.r, d_out], (device, DType::F32));
        Self {
            lora_a: named_param(&a_name, a),
            lora_b: named_param(&format!("{name}.lora_B.weight"), b),
            dropout: DropoutConfig::new(cfg.lora_dropout).init(),
            scale: cfg.scale(),
        }
    }

    /// `s · dropout(x) A B` for `x` `[rows, d_in]` (dropout only while training, i.e. on autodiff).
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let dt = x.dtype();
        let x = if dt == DType::F32 { x } else { x.cast(DType::F32) };
        let y = dropout(x, &self.dropout).matmul(self.lora_a.val()).matmul(self.lora_b.val()) * self.scale;
        if dt == DType::F32 {
            y
        } else {
            y.cast(dt)
        }
    }

    /// `s · A B` in `[d_in, d_out]` (for merging).
    pub fn delta(&self) -> Tensor<B, 2> {
        self.lora_a.val().matmul(self.lora_b.val()) * self.scale
    }
}

/// `dropout(x)` exactly as Burn's [`Dropout::forward`] computes it (each element kept with
/// probability `1 - p` and scaled by `1 / (1 - p)`, only while training, i.e. on autodiff), with the
/// mask drawn differently on the CPU backend: Burn's flex samples a Bernoulli mask one element at a
/// time through a generic sampler (16% of a LoRA step's time). There the mask comes from a
/// counter-based hash of one seed drawn from the backend's RNG, in parallel: the same seed gives the
/// same mask, so re-seeding the backend reproduces it (as layer checkpointing's recomputation needs).
pub fn dropout<B: Backend, const D: usize>(x: Tensor<B, D>, layer: &Dropout) -> Tensor<B, D> {
    use burn::tensor::{Distribution, TensorData};
    let device = x.device();
    let p = layer.prob;
    if p == 0.0 || !B::ad_enabled(&device) || !crate::model::cpu_backend::<B>(&device) {
        return layer.forward(x);
    }
    let draws: Vec<f32> = Tensor::<B, 1>::random([2], Distribution::Uniform(0.0, 1.0), &device)
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32");
    let seed = ((draws[0] * 16_777_216.0) as u64) << 24 | (draws[1] * 16_777_216.0) as u64;
    let keep = 1.0 - p;
    let shape = x.shape();
    let mask = crate::model::cpu_kernels::dropout_mask(seed, keep, (1.0 / keep) as f32, shape.num_elements());
    let mask = Tensor::<B, D>::from_data(TensorData::new(mask, shape), (&device, DType::F32));
    let mask = if x.dtype() == DType::F32 { mask } else { mask.cast(x.dtype()) };
    x * mask
}

/// The module names in the bare model (`layers.N.self_attn.q_proj`, ...) of the targeted
/// linears, with a mutable handle on each.
fn for_each_target<B: Backend>(
    model: &mut DecoderModel<B>,
    targets: &[String],
    mut f: impl FnMut(&str, &mut Linear<B>),
) {
    let want = |n: &str| targets.iter().any(|t| t == n);
    for (i, l) in model.layers.iter_mut().enumerate() {
        let p = format!("layers.{i}");
        let a = &mut l.self_attn;
        for (n, lin) in
            [("q_proj", &mut a.q_proj), ("k_proj", &mut a.k_proj), ("v_proj", &mut a.v_proj), ("o_proj", &mut a.o_proj)]
        {
            if want(n) {
                f(&format!("{p}.self_attn.{n}"), lin);
            }
        }
        let m = &mut l.mlp;
        for (n, lin) in [("gate_proj", &mut m.gate_proj), ("up_proj", &mut m.up_proj), ("down_proj", &mut m.down_proj)]
        {
            if want(n) {
                f(&format!("{p}.mlp.{n}"), lin);
            }
        }
    }
}

/// Whether any adapter of `model` applies dropout: the only randomness inside llmql's decoder layers.
pub fn has_dropout<B: Backend>(model: &DecoderModel<B>) -> bool {
    model.layers.iter().any(|l| {
        let (a, m) = (&l.self_attn, &l.mlp);
        [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &m.gate_proj, &m.up_proj, &m.down_proj]
            .iter()
            .any(|lin| lin.lora.as_ref().is_some_and(|ad| ad.dropout.prob > 0.0))
    })
}

/// The name of an adapter factor's parameter inside llmql (its id and the seed of its
/// initialisation; independent of the layout a file is written in).
fn param_name(module: &str, factor: &str) -> String {
    format!("base_model.model.model.{module}.{factor}.weight")
}

/// Freezes every base weight and attaches fresh adapters to the target modules. `seed` makes the
/// A initialisation reproducible.
pub fn attach_lora<B: Backend>(model: DecoderModel<B>, cfg: &LoraConfig, seed: u64) -> Result<DecoderModel<B>> {
    cfg.validate(Path::new("LoRA settings"))?;
    let device = model.device();
    let dtype = model.dtype();
    let mut model = model.no_grad();
    for_each_target(&mut model, &cfg.target_modules, |name, lin| {
        lin.lora = Some(LoraAdapter::new(
            &format!("base_model.model.model.{name}"),
            lin.d_in(),
            lin.d_out(),
            cfg,
            seed,
            &device,
            dtype,
        ));
    });
    Ok(model)
}

/// Folds every adapter into its base weight (`W + s·A·B`) and removes the adapters.
pub fn merge_lora<B: Backend>(mut model: DecoderModel<B>) -> DecoderModel<B> {
    let all: Vec<String> = DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect();
    for_each_target(&mut model, &all, |_, lin| {
        if let Some(ad) = lin.lora.take() {
            let w = lin.weight.val();
            let w = w.clone() + ad.delta().cast(w.dtype());
            lin.weight = lin.weight.clone().map(|_| w.detach());
        }
    });
    model
}

/// Writes a PEFT adapter folder (`adapter_config.json`, `adapter_model.safetensors`) in
/// `cfg.layout`: keys and `task_type` as PEFT writes them on that model class.
pub fn save_adapter<B: Backend>(model: &DecoderModel<B>, cfg: &LoraConfig, base_model: &str, dir: &Path) -> Result<()> {
    use crate::export::to_host;
    use crate::weights::StoredDtype;
    let mut tensors = Vec::new();
    let mut m = model.clone();
    let out = StoredLayout { layout: cfg.layout, adapter_name: None };
    for_each_target(&mut m, &cfg.target_modules, |name, lin| {
        if let Some(ad) = &lin.lora {
            tensors.push((out.key(name, "lora_A"), to_host(ad.lora_a.val().transpose(), StoredDtype::F32)));
            tensors.push((out.key(name, "lora_B"), to_host(ad.lora_b.val().transpose(), StoredDtype::F32)));
        }
    });
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": cfg.layout.task_type(),
        "r": cfg.r,
        "lora_alpha": cfg.lora_alpha,
        "lora_dropout": cfg.lora_dropout,
        "target_modules": cfg.target_modules,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "use_rslora": cfg.use_rslora,
        "use_dora": false,
    });
    let cp = dir.join("adapter_config.json");
    std::fs::write(&cp, serde_json::to_vec_pretty(&config).expect("json")).map_err(|e| Error::io(&cp, e))?;
    let wp = dir.join("adapter_model.safetensors");
    safetensors::tensor::serialize_to_file(tensors.iter().map(|(n, t)| (n.clone(), t)), None, &wp)
        .map_err(|e| Error::Weights { path: wp.clone(), message: e.to_string() })
}

/// Reads `adapter_config.json`.
pub fn read_adapter_config(dir: &Path) -> Result<LoraConfig> {
    let p = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    parse_adapter_config(&text, &p)
}

/// Parses the text of an `adapter_config.json` (`p` names it in messages).
pub fn parse_adapter_config(text: &str, p: &Path) -> Result<LoraConfig> {
    let p = p.to_path_buf();
    let v: serde_json::Value = serde_json::from_str(text).map_err(|source| Error::Json { path: p.clone(), source })?;
    if v.get("peft_type").and_then(|t| t.as_str()) != Some("LORA") {
        return Err(Error::config(&p, "field `peft_type`: only LORA adapters are supported"));
    }
    let targets = match v.get("target_modules") {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        Some(serde_json::Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
        _ => return Err(Error::config(&p, "missing field `target_modules`")),
    };
    let r = v
        .get("r")
        .and_then(|x| x.as_u64())
        .ok_or_else(|| Error::config(&p, "missing field `r` (a positive integer)"))?;
    // PEFT options that change what the weights mean: refused rather than silently ignored.
    let flag = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
    for k in ["use_dora", "fan_in_fan_out"] {
        if flag(k) {
            return Err(Error::config(&p, format!("field `{k}`: true is not supported (plain LoRA only)")));
        }
    }
    for k in ["rank_pattern", "alpha_pattern"] {
        if v.get(k).and_then(|x| x.as_object()).is_some_and(|o| !o.is_empty()) {
            return Err(Error::config(&p, format!("field `{k}`: per-module ranks or alphas are not supported")));
        }
    }
    if let Some(b) = v.get("bias").and_then(|x| x.as_str()).filter(|b| *b != "none") {
        return Err(Error::config(&p, format!("field `bias`: {b:?} is not supported (only \"none\")")));
    }
    let cfg = LoraConfig {
        r: usize::try_from(r).unwrap_or(usize::MAX),
        lora_alpha: v
            .get("lora_alpha")
            .and_then(|x| x.as_f64())
            .ok_or_else(|| Error::config(&p, "missing field `lora_alpha`"))?,
        lora_dropout: match v.get("lora_dropout") {
            None | Some(serde_json::Value::Null) => 0.0,
            Some(x) => x.as_f64().ok_or_else(|| Error::config(&p, "field `lora_dropout`: expected a number"))?,
        },
        target_modules: targets,
        use_rslora: flag("use_rslora"),
        layout: AdapterLayout::default(),
    };
    cfg.validate(&p)?;
    Ok(cfg)
}

/// Checks that the adapter's tensors have the rank its config names before any adapter is built
/// (a config claiming a huge `r` must not allocate for it).
fn check_rank(w: &WeightFiles, cfg: &LoraConfig, origin: &Path) -> Result<()> {
    for name in w.names() {
        if AdapterKey::parse(&name).is_some_and(|k| k.factor == "lora_A") {
            let shape = w.info(&name).map(|(s, _)| s).unwrap_or_default();
            if shape.len() != 2 || shape[0] != cfg.r {
                return Err(Error::config(
                    origin,
                    format!("field `r`: {} does not match tensor `{name}` of shape {shape:?}", cfg.r),
                ));
            }
        }
    }
    Ok(())
}

/// The folder of an adapter source: a folder as it is, else a hub id `org/name[@revision]`
/// resolved through the hub cache as models are ([`crate::hub::resolve_adapter`]).
pub fn resolve_adapter_dir(spec: &Path) -> Result<std::path::PathBuf> {
    if spec.is_dir() {
        return Ok(spec.to_path_buf());
    }
    if spec.exists() {
        return Err(Error::config(
            spec,
            "a file, but an adapter is a folder (adapter_config.json, adapter_model.safetensors) or a hub id org/name",
        ));
    }
    #[cfg(feature = "hub")]
    if let Some(s) = spec.to_str() {
        if crate::hub::looks_like_repo_id(s) {
            return crate::hub::resolve_adapter(s);
        }
    }
    Err(Error::config(spec, "adapter not found: not a folder and not a hub id of the form org/name"))
}

/// Attaches the adapter of `spec` (a folder or a hub id, see [`resolve_adapter_dir`]; PEFT format
/// in either layout, ours or Python PEFT's) to `model`.
pub fn load_adapter<B: Backend>(model: DecoderModel<B>, spec: &Path) -> Result<DecoderModel<B>> {
    let dir = &resolve_adapter_dir(spec)?;
    let cfg = read_adapter_config(dir)?;
    let w = WeightFiles::open_files(dir, &[crate::paths::model_file(dir, "adapter_model.safetensors")?])?;
    check_rank(&w, &cfg, &dir.join("adapter_config.json"))?;
    let model = attach_lora(model, &cfg, 0)?;
    fill_adapter_from(model, &w, &cfg)
}

/// Overwrites the A/B weights of `model`'s attached adapters with those stored in `dir`.
pub fn fill_adapter<B: Backend>(model: DecoderModel<B>, dir: &Path, cfg: &LoraConfig) -> Result<DecoderModel<B>> {
    let w = WeightFiles::open_files(dir, &[crate::paths::model_file(dir, "adapter_model.safetensors")?])?;
    fill_adapter_from(model, &w, cfg)
}

/// Attaches a PEFT adapter held in memory (`adapter_config.json` text and
/// `adapter_model.safetensors` bytes; the browser's path) to `model`.
pub fn load_adapter_bytes<B: Backend>(
    model: DecoderModel<B>,
    config_json: &str,
    weights: Vec<u8>,
) -> Result<DecoderModel<B>> {
    let origin = Path::new("adapter");
    let cfg = parse_adapter_config(config_json, &origin.join("adapter_config.json"))?;
    let w = WeightFiles::from_bytes(origin, vec![("adapter_model.safetensors".to_string(), weights)])?;
    check_rank(&w, &cfg, &origin.join("adapter_config.json"))?;
    let model = attach_lora(model, &cfg, 0)?;
    fill_adapter_from(model, &w, &cfg)
}

/// Overwrites the A/B weights of `model`'s attached adapters with the tensors in `w`, in
/// whichever layout `w` stores them ([`StoredLayout::detect`]); every tensor of `w` must be used.
pub fn fill_adapter_from<B: Backend>(
    mut model: DecoderModel<B>,
    w: &WeightFiles,
    cfg: &LoraConfig,
) -> Result<DecoderModel<B>> {
    let stored = StoredLayout::detect(&w.names(), &w.origin)?;
    tracing::debug!(
        "adapter {}: {:?} layout, adapter name {:?}",
        w.origin.display(),
        stored.layout,
        stored.adapter_name
    );
    let device = model.device();
    let dtype = DType::F32; // adapters are f32 (see LoraAdapter::new)
    for_each_target(&mut model, &cfg.target_modules, |name, lin| {
        let (din, dout) = (lin.d_in(), lin.d_out());
        if let Some(ad) = lin.lora.as_mut() {
            let a: Tensor<B, 2> = w.take(&stored.key(name, "lora_A"), [cfg.r, din], &device, dtype);
            let b: Tensor<B, 2> = w.take(&stored.key(name, "lora_B"), [dout, cfg.r], &device, dtype);
            ad.lora_a = named_param(&param_name(name, "lora_A"), a.transpose());
            ad.lora_b = named_param(&param_name(name, "lora_B"), b.transpose());
        }
    });
    w.finish()?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LoraConfig> {
        parse_adapter_config(text, Path::new("adapter_config.json"))
    }

    #[test]
    fn adapter_config_values_are_validated() {
        let ok =
            r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj"]}"#;
        assert_eq!(parse(ok).unwrap().r, 8);
        for (text, want) in [
            (
                r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": 2.0, "target_modules": ["q_proj"]}"#,
                "field `lora_dropout`: 2",
            ),
            (
                r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": -0.5, "target_modules": ["q_proj"]}"#,
                "field `lora_dropout`",
            ),
            (
                r#"{"peft_type": "LORA", "r": 1000000000000, "lora_alpha": 16, "target_modules": ["q_proj"]}"#,
                "field `r`: 1000000000000 is out of range",
            ),
            (r#"{"peft_type": "LORA", "r": 0, "lora_alpha": 16, "target_modules": ["q_proj"]}"#, "field `r`: 0"),
            (r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": []}"#, "field `target_modules`"),
            (r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["lm_head"]}"#, "\"lm_head\""),
            (r#"{"peft_type": "LORA", "r": -3, "lora_alpha": 16, "target_modules": ["q_proj"]}"#, "missing field `r`"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with("adapter_config.json: ") && e.contains(want), "{text}: {e}");
        }
    }
}
