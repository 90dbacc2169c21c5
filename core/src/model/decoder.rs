//! The decoder stack: `model.embed_tokens`, `model.layers.N.*`, `model.norm`, optional `lm_head`.
use super::attention::{AttentionMask, LayerContext, SelfAttention, StepKv};
use super::layer_runner::{LayerRunner, PlainLayers};
use super::linear::Linear;
use super::mlp::Mlp;
use super::rms_norm::RmsNorm;
use super::rope::RotaryEmbedding;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::weights::{named_param, WeightFiles};
use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, module::embedding, DType, Int, Tensor};

#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub input_layernorm: RmsNorm<B>,
    pub self_attn: SelfAttention<B>,
    pub post_attention_layernorm: RmsNorm<B>,
    pub mlp: Mlp<B>,
}

impl<B: Backend> DecoderLayer<B> {
    pub fn load(w: &WeightFiles, prefix: &str, c: &ModelConfig, device: &B::Device, dtype: DType) -> Self {
        let h = c.hidden_size;
        Self {
            input_layernorm: RmsNorm::load(w, &format!("{prefix}.input_layernorm"), h, c.rms_norm_eps, device, dtype),
            self_attn: SelfAttention::load(w, &format!("{prefix}.self_attn"), c, device, dtype),
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{prefix}.post_attention_layernorm"),
                h,
                c.rms_norm_eps,
                device,
                dtype,
            ),
            mlp: Mlp::load(w, &format!("{prefix}.mlp"), h, c.intermediate_size, device, dtype),
        }
    }

    pub fn forward(&self, x: Tensor<B, 3>, ctx: &LayerContext<B>) -> Tensor<B, 3> {
        let h = self.self_attn.forward(self.input_layernorm.forward(x.clone()), ctx) + x;
        self.mlp.forward(self.post_attention_layernorm.forward(h.clone())) + h
    }

    /// [`Self::forward`] with a KV prefix; also returns the keys and values attended to (the
    /// prefix's, then this call's).
    pub fn forward_kv(
        &self,
        x: Tensor<B, 3>,
        ctx: &LayerContext<B>,
        prefix: Option<LayerKv<B>>,
    ) -> (Tensor<B, 3>, LayerKv<B>) {
        let (a, k, v) = self.self_attn.forward_kv(self.input_layernorm.forward(x.clone()), ctx, prefix);
        let h = a + x;
        (self.mlp.forward(self.post_attention_layernorm.forward(h.clone())) + h, (k, v))
    }
}

impl<B: Backend> DecoderLayer<B> {
    /// [`Self::forward`] for one decoding step against a [`StepKv`] cache (see
    /// [`SelfAttention::forward_step`]).
    pub fn forward_step(
        &self,
        x: Tensor<B, 3>,
        ctx: &LayerContext<B>,
        cache: StepKv<B>,
        at: usize,
    ) -> (Tensor<B, 3>, StepKv<B>) {
        let (a, cache) = self.self_attn.forward_step(self.input_layernorm.forward(x.clone()), ctx, cache, at);
        let h = a + x;
        (self.mlp.forward(self.post_attention_layernorm.forward(h.clone())) + h, cache)
    }
}

/// One layer's rotated keys and values, `[b, s, kv_heads, head_dim]` (a KV cache entry).
pub type LayerKv<B> = (Tensor<B, 4>, Tensor<B, 4>);

/// What to load besides the decoder stack.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Compute dtype of every weight and activation.
    pub dtype: DType,
    /// Load `lm_head` (needed for QL scoring and training; not for encoding).
    pub lm_head: bool,
    /// Leave `embed_tokens` out (a `[1, hidden]` placeholder is loaded instead): the caller looks
    /// token rows up on the host and calls [`DecoderModel::forward_layers_from`]. For embedding
    /// tables larger than a WebGPU storage binding (128 MiB by default).
    pub host_embeddings: bool,
    /// Compute in this dtype while the weights stay in `dtype` (mixed precision: f32 master weights,
    /// bf16 matmuls; gradients reach the f32 weights through the casts). `None`: compute in `dtype`.
    pub compute_dtype: Option<DType>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { dtype: DType::F32, lm_head: false, host_embeddings: false, compute_dtype: None }
    }
}

/// The checkpoint's name for the token embeddings: `model.embed_tokens.weight`, or
/// `embed_tokens.weight` in checkpoints saved from the bare base model.
pub fn embed_tokens_name(w: &WeightFiles) -> String {
    if w.contains("model.embed_tokens.weight") || !w.contains("embed_tokens.weight") {
        "model.embed_tokens.weight".into()
    } else {
        "embed_tokens.weight".into()
    }
}

#[derive(Module, Debug)]
pub struct DecoderModel<B: Backend> {
    pub embed_tokens: Param<Tensor<B, 2>>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
    /// `None` when tied to the embeddings or not loaded.
    pub lm_head: Option<Linear<B>>,
    #[module(skip)]
    pub config: ModelConfig,
    #[module(skip)]
    pub rope: RotaryEmbedding,
    /// Activation dtype when it differs from the weights' (see [`LoadOptions::compute_dtype`]).
    #[module(skip)]
    pub compute_dtype: Option<DType>,
}

impl<B: Backend> DecoderModel<B> {
    /// Builds the model from a checkpoint's tensors. HF prefixes (`model.`) are detected; a
    /// checkpoint saved from the bare base model (no `model.` prefix) loads too.
    pub fn load(w: &WeightFiles, c: &ModelConfig, opts: LoadOptions, device: &B::Device) -> Result<Self> {
        let dtype = opts.dtype;
        let embed_name = embed_tokens_name(w);
        let p = embed_name.strip_suffix("embed_tokens.weight").unwrap_or("model.").to_string();
        let embed_tokens = if opts.host_embeddings {
            w.ignore(&embed_name);
            Tensor::zeros([1, c.hidden_size], (device, dtype))
        } else {
            w.take(&embed_name, [c.vocab_size, c.hidden_size], device, dtype)
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| DecoderLayer::load(w, &format!("{p}layers.{i}"), c, device, dtype))
            .collect();
        let norm = RmsNorm::load(w, &format!("{p}norm"), c.hidden_size, c.rms_norm_eps, device, dtype);
        let lm_head = if c.tie_word_embeddings {
            // Some tied checkpoints still carry a copy of the embeddings as lm_head.
            w.ignore("lm_head.weight");
            None
        } else if opts.lm_head {
            Some(Linear::load(w, "lm_head", c.hidden_size, c.vocab_size, false, device, dtype))
        } else {
            w.ignore("lm_head.weight");
            None
        };
        w.finish()?;
        Ok(Self {
            embed_tokens: named_param(&embed_name, embed_tokens),
            layers,
            norm,
            lm_head,
            config: c.clone(),
            rope: RotaryEmbedding::new(c),
            compute_dtype: opts.compute_dtype.filter(|d| *d != dtype),
        })
    }

    /// The weights' dtype.
    pub fn dtype(&self) -> DType {
        self.embed_tokens.val().dtype()
    }

    /// The activations' dtype (the weights' unless mixed precision is on).
    pub fn compute_dtype(&self) -> DType {
        self.compute_dtype.unwrap_or_else(|| self.dtype())
    }

    /// Token embeddings of `input_ids` in the compute dtype.
    fn embed(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let x = embedding(self.embed_tokens.val(), input_ids);
        match self.compute_dtype {
            Some(d) => x.cast(d),
            None => x,
        }
    }

    pub fn device(&self) -> B::Device {
        self.embed_tokens.val().device()
    }

    /// Hidden states after the last decoder layer, before the final norm: `[b, s, hidden]`.
    /// `positions` are the RoPE position ids (`[b, s]`).
    pub fn forward_layers(
        &self,
        input_ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
    ) -> Tensor<B, 3> {
        self.forward_layers_hooked(input_ids, positions, mask, &mut |_, x| x)
    }

    /// [`Self::forward_layers`] with `hook(layer, x)` applied to the residual stream entering each
    /// layer (for probing and for tests that pin a position's state, e.g. the Attention Stop proof).
    pub fn forward_layers_hooked(
        &self,
        input_ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
        hook: &mut dyn FnMut(usize, Tensor<B, 3>) -> Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let x = self.embed(input_ids);
        self.forward_layers_from(x, positions, mask, hook)
    }

    /// [`Self::forward_layers_hooked`] from token embeddings `x` (`[b, s, hidden]`) already looked up.
    pub fn forward_layers_from(
        &self,
        x: Tensor<B, 3>,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
        hook: &mut dyn FnMut(usize, Tensor<B, 3>) -> Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        self.forward_layers_run(x, positions, mask, hook, &PlainLayers)
    }

    /// [`Self::forward_layers_from`] with the layers run by `runner` (e.g. gradient checkpointing,
    /// which a training step passes in; see [`LayerRunner`]).
    pub fn forward_layers_run(
        &self,
        x: Tensor<B, 3>,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
        hook: &mut dyn FnMut(usize, Tensor<B, 3>) -> Tensor<B, 3>,
        runner: &dyn LayerRunner<B>,
    ) -> Tensor<B, 3> {
        let ctx = self.layer_context(positions, mask, 0);
        runner.run(self, x, &ctx, hook)
    }

    /// Token embeddings of `input_ids`, as the layers take them (in the compute dtype).
    pub(crate) fn embed_ids(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embed(input_ids)
    }

    /// The tensors every layer of one forward pass shares (RoPE tables, attention bias) for
    /// `positions` `[b, s]` after a KV prefix of `prefix` positions.
    pub fn layer_context(
        &self,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
        prefix: usize,
    ) -> LayerContext<B> {
        LayerContext::new(&self.config, &self.rope, positions, mask, prefix, self.compute_dtype())
    }

    /// Hidden states after the final norm, attending also to a per-layer KV `prefix` (one entry per
    /// layer, e.g. a document's separator under Attention Stop); returns each layer's keys and
    /// values too, the prefix's followed by this call's (`[b, p + s, ..]`: the KV cache of the
    /// next call). `positions` continue after the prefix; `mask` is `[b, 1, s, p + s]`.
    pub fn forward_kv(
        &self,
        input_ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
        prefix: Option<Vec<LayerKv<B>>>,
    ) -> (Tensor<B, 3>, Vec<LayerKv<B>>) {
        let plen = prefix.as_ref().and_then(|p| p.first()).map_or(0, |(k, _)| k.dims()[1]);
        let ctx = self.layer_context(positions, mask, plen);
        let mut x = self.embed(input_ids);
        let mut prefix = prefix.map(|p| p.into_iter());
        let mut kvs = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let p = prefix.as_mut().map(|it| it.next().expect("one prefix entry per layer"));
            let (y, kv) = layer.forward_kv(x, &ctx, p);
            x = y;
            kvs.push(kv);
        }
        (self.norm.forward(x), kvs)
    }

    /// One decoding step: hidden states after the final norm (`[b, 1, hidden]`) of one new token
    /// per row, written into column `at` of each layer's [`StepKv`] cache and attending to the
    /// cache's columns as `mask` (`[b, 1, 1, capacity]`) allows; returns the caches too.
    pub fn forward_step(
        &self,
        input_ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
        cache: Vec<StepKv<B>>,
        at: usize,
    ) -> (Tensor<B, 3>, Vec<StepKv<B>>) {
        let cap = cache.first().map_or(1, StepKv::capacity);
        let ctx = self.layer_context(positions, mask, cap - 1);
        let mut x = self.embed(input_ids);
        let mut out = Vec::with_capacity(cache.len());
        for (layer, kv) in self.layers.iter().zip(cache) {
            let (y, kv) = layer.forward_step(x, &ctx, kv, at);
            x = y;
            out.push(kv);
        }
        (self.norm.forward(x), out)
    }

    /// Hidden states after the final norm (`last_hidden_state` in transformers).
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
    ) -> Tensor<B, 3> {
        self.forward_run(input_ids, positions, mask, &PlainLayers)
    }

    /// [`Self::forward`] with the layers run by `runner` ([`LayerRunner`]).
    pub fn forward_run(
        &self,
        input_ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
        runner: &dyn LayerRunner<B>,
    ) -> Tensor<B, 3> {
        let x = self.embed(input_ids);
        self.norm.forward(self.forward_layers_run(x, positions, mask, &mut |_, x| x, runner))
    }

    /// Next-token logits for normed hidden states `[..., hidden]` -> `[..., vocab]`.
    pub fn logits<const D: usize>(&self, hidden: Tensor<B, D>) -> Tensor<B, D> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => {
                assert!(
                    self.config.tie_word_embeddings,
                    "lm_head was not loaded: load with LoadOptions {{ lm_head: true, .. }}"
                );
                let w = self.embed_tokens.val();
                let w = if w.dtype() == hidden.dtype() { w } else { w.cast(hidden.dtype()) };
                super::linear::on_rows(hidden, |h| super::cpu_kernels::tied_logits(h, w))
            }
        }
    }
}
