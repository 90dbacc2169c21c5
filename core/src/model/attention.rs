//! Grouped-query self-attention with rotary positions. The mask is the caller's: plain causal for
//! encoding, or an explicit boolean mask (e.g. LLM-QL's Attention Stop, see `crate::mask`).
use super::linear::Linear;
use super::rope::RotaryEmbedding;
use crate::config::ModelConfig;
use crate::weights::WeightFiles;
use burn::module::Module;
use burn::tensor::{
    backend::Backend, module::attention, ops::AttentionModuleOptions, Bool, DType, Tensor,
};

/// Which keys each query position may attend to.
#[derive(Debug, Clone)]
pub enum AttentionMask<B: Backend> {
    /// Ordinary causal attention (right-padded batches need nothing more: real tokens never see padding).
    Causal,
    /// `[batch, 1, seq, seq]`, `true` = masked (may not attend).
    Explicit(Tensor<B, 4, Bool>),
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
        let (h, q, kv) = (
            c.hidden_size,
            c.num_attention_heads * c.head_dim,
            c.num_key_value_heads * c.head_dim,
        );
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

    /// `[b, s, heads*head_dim]` -> `[b, heads, s, head_dim]`.
    fn split_heads(x: Tensor<B, 3>, heads: usize, head_dim: usize) -> Tensor<B, 4> {
        let [b, s, _] = x.dims();
        x.reshape([b, s, heads, head_dim]).swap_dims(1, 2)
    }

    /// Repeats each K/V head for its group of query heads (HF `repeat_kv`).
    fn repeat_kv(x: Tensor<B, 4>, n_rep: usize) -> Tensor<B, 4> {
        if n_rep == 1 {
            return x;
        }
        let [b, kvh, s, d] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([b, kvh, n_rep, s, d])
            .reshape([b, kvh * n_rep, s, d])
    }

    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        mask: &AttentionMask<B>,
    ) -> Tensor<B, 3> {
        self.forward_kv(x, cos, sin, mask, None).0
    }

    /// [`Self::forward`] that also returns this call's rotated keys and values
    /// (`[b, kv_heads, s, head_dim]`, before GQA expansion) and may attend to `prefix` keys/values
    /// placed before the sequence (a KV cache). With a prefix of length p the mask must be
    /// `Explicit` with shape `[b, 1, s, p + s]` (column j < p is prefix position j).
    pub fn forward_kv(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        mask: &AttentionMask<B>,
        prefix: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
    ) -> (Tensor<B, 3>, Tensor<B, 4>, Tensor<B, 4>) {
        let [b, s, _] = x.dims();
        let q = Self::split_heads(self.q_proj.forward(x.clone()), self.num_heads, self.head_dim);
        let k = Self::split_heads(self.k_proj.forward(x.clone()), self.num_kv_heads, self.head_dim);
        let v = Self::split_heads(self.v_proj.forward(x), self.num_kv_heads, self.head_dim);
        let q = RotaryEmbedding::apply(q, cos, sin);
        let k_new = RotaryEmbedding::apply(k, cos, sin);
        let v_new = v;
        let (k, v) = match prefix {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k_new.clone()], 2), Tensor::cat(vec![pv, v_new.clone()], 2)),
            None => (k_new.clone(), v_new.clone()),
        };
        let sk = k.dims()[2];
        let n_rep = self.num_heads / self.num_kv_heads;
        let k = Self::repeat_kv(k, n_rep);
        let v = Self::repeat_kv(v, n_rep);
        let (mask, is_causal) = match mask {
            AttentionMask::Causal => {
                assert_eq!(sk, s, "a KV prefix needs an explicit mask");
                (None, true)
            }
            AttentionMask::Explicit(m) => (Some(m.clone().expand([b, self.num_heads, s, sk])), false),
        };
        let out = attention(
            q,
            k,
            v,
            mask,
            None,
            AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal,
            },
        );
        let out = out.swap_dims(1, 2).reshape([b, s, self.num_heads * self.head_dim]);
        (self.o_proj.forward(out), k_new, v_new)
    }
}
