//! Grouped-query self-attention with rotary positions. The mask is the caller's: plain causal for
//! encoding, or an explicit boolean mask (e.g. LLM-QL's Attention Stop, see `crate::ql::attention_stop`).
//!
//! Layout: activations stay as the projections write them, one row per token (`[b*s, heads*d]`,
//! i.e. `[b, s, heads, d]`), from the projections through RoPE to the attention. The attention is
//! two batched matmuls over strided views (no copies of q, k or v): queries grouped per KV head
//! (`[b, kv_heads, group, s, d]`) against keys and values broadcast over the group (GQA without
//! the `repeat_kv` copy), the mask as an additive bias built once per forward pass, and one
//! softmax. Backends with a fused attention kernel (GPUs, inference) use Burn's
//! `module::attention` instead; training on any backend uses the matmul form (Burn's autodiff
//! decomposes `module::attention` into the same operations).
use super::linear::Linear;
use super::rope::RotaryEmbedding;
use crate::config::ModelConfig;
use crate::weights::WeightFiles;
use burn::module::Module;
use burn::tensor::{
    backend::Backend, module::attention, ops::AttentionModuleOptions, Bool, DType, Int, Tensor, TensorData,
};

/// Which keys each query position may attend to.
#[derive(Debug, Clone)]
pub enum AttentionMask<B: Backend> {
    /// Ordinary causal attention (right-padded batches need nothing more: real tokens never see padding).
    Causal,
    /// `[batch, 1, seq, seq]`, `true` = masked (may not attend).
    Explicit(Tensor<B, 4, Bool>),
}

/// What every layer of one forward pass shares, built once per pass ([`LayerContext::new`]): the
/// RoPE tables in the activations' layout and the mask as an additive bias.
#[derive(Debug, Clone)]
pub struct LayerContext<B: Backend> {
    pub batch: usize,
    pub seq: usize,
    /// Keys attended to: `prefix + seq`.
    pub keys: usize,
    /// Queries' RoPE tables `[b*s*heads, d]` (with the softmax scale folded in).
    pub rope_q: (Tensor<B, 2>, Tensor<B, 2>),
    /// Keys' RoPE tables `[b*s*kv_heads, d]`.
    pub rope_k: (Tensor<B, 2>, Tensor<B, 2>),
    pub mask: AttentionMask<B>,
    /// Additive bias over the scores (`0` attend, a large negative value masked): `[1, 1, s*keys]`
    /// (causal, shared by every row) or `[b, heads, s*keys]` (explicit). `None` with the fused kernel.
    pub bias: Option<Tensor<B, 3>>,
    /// Use Burn's fused `module::attention` (inference on GPU backends).
    pub fused: bool,
}

/// The masked positions' bias: large and negative but finite in the compute dtype, so a
/// fully-masked row would give a uniform average instead of NaN (no row is fully masked here).
fn mask_value(dtype: DType) -> f32 {
    match dtype {
        DType::F16 => -30000.0,
        _ => -1.0e30,
    }
}

impl<B: Backend> LayerContext<B> {
    /// Builds the shared tensors of one forward pass over `positions` `[b, s]` with `mask`, after a
    /// KV prefix of `prefix` positions (then the mask must be explicit, `[b, 1, s, prefix + s]`).
    pub fn new(
        config: &ModelConfig,
        rope: &RotaryEmbedding,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
        prefix: usize,
        dtype: DType,
    ) -> Self {
        let device = positions.device();
        let [b, s] = positions.dims();
        let keys = prefix + s;
        let (h, kvh) = (config.num_attention_heads, config.num_key_value_heads);
        let scale = 1.0 / (config.head_dim as f64).sqrt();
        let (rope_q, rope_k) = rope.tables_qk(positions, (h, kvh), (scale, 1.0), dtype);
        let fused = !B::ad_enabled(&device) && !super::cpu_backend::<B>(&device);
        let neg = mask_value(dtype);
        let bias = if fused {
            None
        } else {
            Some(match mask {
                AttentionMask::Causal => {
                    assert_eq!(prefix, 0, "a KV prefix needs an explicit mask");
                    let v: Vec<f32> = (0..s * s).map(|i| if i % s > i / s { neg } else { 0.0 }).collect();
                    Tensor::<B, 3>::from_data(TensorData::new(v, [1, 1, s * s]), (&device, dtype))
                }
                AttentionMask::Explicit(m) => {
                    assert_eq!(m.dims(), [b, 1, s, keys], "explicit mask shape");
                    let zeros = Tensor::<B, 4>::zeros([b, 1, s, keys], (&device, dtype));
                    // Materialised per head once here, so each layer's add is contiguous.
                    zeros.mask_fill(m.clone(), neg).reshape([b, 1, s * keys]).repeat_dim(1, h)
                }
            })
        };
        Self { batch: b, seq: s, keys, rope_q, rope_k, mask: mask.clone(), bias, fused }
    }
}

/// One layer's KV cache laid out for decoding one token at a time ([`SelfAttention::forward_step`]):
/// room for `capacity` positions allocated once, keys stored transposed (`kt`
/// `[b, kv_heads, head_dim, capacity]`) and values as `[b, kv_heads, capacity, head_dim]`, the
/// layouts the attention's two matmuls read without a copy. Each step writes its key and value
/// into its column in place (the cache is owned, so nothing else holds the buffer), where
/// appending to a `[b, s, kv_heads, head_dim]` cache would copy all of it at every step. Columns
/// not yet written are masked by the caller.
#[derive(Debug, Clone)]
pub struct StepKv<B: Backend> {
    pub kt: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
}

impl<B: Backend> StepKv<B> {
    /// A cache of `capacity` columns holding the rotated keys/values `k`, `v`
    /// (`[b, s, kv_heads, head_dim]`, e.g. a prompt's from [`SelfAttention::forward_kv`]) in its
    /// first `s` columns.
    pub fn from_prefix(k: Tensor<B, 4>, v: Tensor<B, 4>, capacity: usize) -> Self {
        let [b, s, kvh, d] = k.dims();
        assert!(capacity >= s, "capacity {capacity} below the prefix's {s} positions");
        let device = k.device();
        let kt = Tensor::<B, 4>::zeros([b, kvh, d, capacity], (&device, k.dtype()))
            .slice_assign([0..b, 0..kvh, 0..d, 0..s], k.permute([0, 2, 3, 1]));
        let v = Tensor::<B, 4>::zeros([b, kvh, capacity, d], (&device, v.dtype()))
            .slice_assign([0..b, 0..kvh, 0..s, 0..d], v.permute([0, 2, 1, 3]));
        Self { kt, v }
    }

    /// Only the given rows (batch entries), in that order.
    pub fn select(self, rows: Tensor<B, 1, Int>) -> Self {
        Self { kt: self.kt.select(0, rows.clone()), v: self.v.select(0, rows) }
    }

    pub fn capacity(&self) -> usize {
        self.kt.dims()[3]
    }
}

#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub o_proj: Linear<B>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl<B: Backend> SelfAttention<B> {
    pub fn load(w: &WeightFiles, prefix: &str, c: &ModelConfig, device: &B::Device, dtype: DType) -> Self {
        let (h, q, kv) = (c.hidden_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        Self {
            q_proj: Linear::load(w, &format!("{prefix}.q_proj"), h, q, c.qkv_bias, device, dtype),
            k_proj: Linear::load(w, &format!("{prefix}.k_proj"), h, kv, c.qkv_bias, device, dtype),
            v_proj: Linear::load(w, &format!("{prefix}.v_proj"), h, kv, c.qkv_bias, device, dtype),
            o_proj: Linear::load(w, &format!("{prefix}.o_proj"), q, h, c.o_bias, device, dtype),
            num_heads: c.num_attention_heads,
            num_kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
        }
    }

    /// Repeats each K/V head for its group of query heads (HF `repeat_kv`); `[b, kvh, s, d]`.
    fn repeat_kv(x: Tensor<B, 4>, n_rep: usize) -> Tensor<B, 4> {
        if n_rep == 1 {
            return x;
        }
        let [b, kvh, s, d] = x.dims();
        x.unsqueeze_dim::<5>(2).expand([b, kvh, n_rep, s, d]).reshape([b, kvh * n_rep, s, d])
    }

    pub fn forward(&self, x: Tensor<B, 3>, ctx: &LayerContext<B>) -> Tensor<B, 3> {
        self.forward_kv(x, ctx, None).0
    }

    /// [`Self::forward`] that may attend to `prefix` keys/values (`[b, p, kv_heads, head_dim]`)
    /// placed before the sequence (a KV cache), and returns every rotated key and value attended
    /// to, the prefix's followed by this call's (`[b, p + s, kv_heads, head_dim]`: the cache to
    /// pass to the next call); `ctx` must have been built for that prefix length.
    pub fn forward_kv(
        &self,
        x: Tensor<B, 3>,
        ctx: &LayerContext<B>,
        prefix: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
    ) -> (Tensor<B, 3>, Tensor<B, 4>, Tensor<B, 4>) {
        let [b, s, hidden] = x.dims();
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let x2 = x.reshape([b * s, hidden]);
        // One row per token and head, rotated (q pre-scaled by 1/sqrt(d)).
        let q = self.q_proj.forward(x2.clone()).reshape([b * s * h, d]);
        let q = RotaryEmbedding::apply_rows(q, &ctx.rope_q.0, &ctx.rope_q.1);
        let k = self.k_proj.forward(x2.clone()).reshape([b * s * kvh, d]);
        let k_new = RotaryEmbedding::apply_rows(k, &ctx.rope_k.0, &ctx.rope_k.1).reshape([b, s, kvh, d]);
        let v_new = self.v_proj.forward(x2).reshape([b, s, kvh, d]);
        let (k, v) = match prefix {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k_new], 1), Tensor::cat(vec![pv, v_new], 1)),
            None => (k_new, v_new),
        };
        let sk = k.dims()[1];
        assert_eq!(sk, ctx.keys, "layer context built for another KV prefix");
        let out = if ctx.fused {
            self.fused(q, k.clone(), v.clone(), ctx)
        } else {
            self.grouped(q, k.clone(), v.clone(), ctx)
        };
        (self.o_proj.forward(out).reshape([b, s, hidden]), k, v)
    }

    /// One decoding step: `x` `[b, 1, hidden]` (one new token per row) writes its key and value into
    /// column `at` of `cache` and attends to all of the cache's columns (`ctx` built for one position
    /// after `capacity - 1`, with a mask hiding the columns each row may not see, those after `at`
    /// included). Returns the output and the cache.
    pub fn forward_step(
        &self,
        x: Tensor<B, 3>,
        ctx: &LayerContext<B>,
        cache: StepKv<B>,
        at: usize,
    ) -> (Tensor<B, 3>, StepKv<B>) {
        let [b, s, hidden] = x.dims();
        assert_eq!(s, 1, "a decoding step takes one position per row");
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let cap = cache.capacity();
        assert_eq!(ctx.keys, cap, "layer context built for another cache capacity");
        let x2 = x.reshape([b, hidden]);
        let q = self.q_proj.forward(x2.clone()).reshape([b * h, d]);
        let q = RotaryEmbedding::apply_rows(q, &ctx.rope_q.0, &ctx.rope_q.1);
        let k = self.k_proj.forward(x2.clone()).reshape([b * kvh, d]);
        let k = RotaryEmbedding::apply_rows(k, &ctx.rope_k.0, &ctx.rope_k.1);
        let v = self.v_proj.forward(x2);
        // [b, 1, kvh, d] has the element order of [b, kvh, d, 1] and of [b, kvh, 1, d].
        let kt = cache.kt.slice_assign([0..b, 0..kvh, 0..d, at..at + 1], k.reshape([b, kvh, d, 1]));
        let vc = cache.v.slice_assign([0..b, 0..kvh, at..at + 1, 0..d], v.reshape([b, kvh, 1, d]));
        let r = h / kvh;
        let out = if ctx.fused {
            let q = q.reshape([b, h, 1, d]);
            let k = Self::repeat_kv(kt.clone().swap_dims(2, 3), r);
            let v = Self::repeat_kv(vc.clone(), r);
            let mask = match &ctx.mask {
                AttentionMask::Explicit(m) => Some(m.clone().expand([b, h, 1, cap])),
                AttentionMask::Causal => None,
            };
            let options = AttentionModuleOptions { scale: Some(1.0), softcap: None, is_causal: false };
            attention(q, k, v, mask, None, options).reshape([b, h * d])
        } else {
            let q = q.reshape([b, kvh, r, 1, d]);
            let scores = q.matmul(kt.clone().unsqueeze_dim::<5>(2)).reshape([b, h, cap]);
            let scores = match &ctx.bias {
                Some(bias) => scores + bias.clone(),
                None => scores,
            };
            let p = super::cpu_kernels::softmax_rows(scores.reshape([b * h, cap])).reshape([b, kvh, r, 1, cap]);
            p.matmul(vc.clone().unsqueeze_dim::<5>(2)).reshape([b, h * d])
        };
        (self.o_proj.forward(out).reshape([b, 1, hidden]), StepKv { kt, v: vc })
    }

    /// Scores, bias, softmax and values as two batched matmuls, queries grouped by KV head.
    /// `q` `[b*s*h, d]`, `k`/`v` `[b, sk, kvh, d]` -> `[b*s, h*d]`.
    fn grouped(&self, q: Tensor<B, 2>, k: Tensor<B, 4>, v: Tensor<B, 4>, ctx: &LayerContext<B>) -> Tensor<B, 2> {
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let (b, s, sk) = (ctx.batch, ctx.seq, ctx.keys);
        let r = h / kvh;
        // [b, s, kvh, r, d] -> [b, kvh, r, s, d] (a view)
        let q = q.reshape([b, s, kvh, r, d]).permute([0, 2, 3, 1, 4]);
        // [b, sk, kvh, d] -> [b, kvh, 1, d, sk] and [b, kvh, 1, sk, d] (views, broadcast over r)
        let kt = k.permute([0, 2, 3, 1]).unsqueeze_dim::<5>(2);
        let v = v.permute([0, 2, 1, 3]).unsqueeze_dim::<5>(2);
        let scores = q.matmul(kt).reshape([b, h, s * sk]);
        let scores = match &ctx.bias {
            Some(bias) => scores + bias.clone(),
            None => scores,
        };
        let p = super::cpu_kernels::softmax_rows(scores.reshape([b * h * s, sk])).reshape([b, kvh, r, s, sk]);
        // [b, kvh, r, s, d] -> [b, s, kvh, r, d] -> rows
        p.matmul(v).permute([0, 3, 1, 2, 4]).reshape([b * s, h * d])
    }

    /// Burn's fused attention kernel (GPU inference).
    fn fused(&self, q: Tensor<B, 2>, k: Tensor<B, 4>, v: Tensor<B, 4>, ctx: &LayerContext<B>) -> Tensor<B, 2> {
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let (b, s, sk) = (ctx.batch, ctx.seq, ctx.keys);
        let q = q.reshape([b, s, h, d]).swap_dims(1, 2);
        let k = Self::repeat_kv(k.swap_dims(1, 2), h / kvh);
        let v = Self::repeat_kv(v.swap_dims(1, 2), h / kvh);
        let (mask, is_causal) = match &ctx.mask {
            AttentionMask::Causal => (None, true),
            AttentionMask::Explicit(m) => (Some(m.clone().expand([b, h, s, sk])), false),
        };
        // The scale is already in q's RoPE tables.
        let options = AttentionModuleOptions { scale: Some(1.0), softcap: None, is_causal };
        let out = attention(q, k, v, mask, None, options);
        out.swap_dims(1, 2).reshape([b * s, h * d])
    }
}
