//! Rotary position embedding in the HF "rotate half" convention, with explicit position ids, so
//! q/k weights stay exactly in their HF layout. Supports Llama 3's frequency scaling.
use crate::config::{ModelConfig, RopeScaling};
use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};

#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    /// `head_dim / 2` inverse frequencies.
    pub inv_freq: Vec<f32>,
}

impl RotaryEmbedding {
    pub fn new(config: &ModelConfig) -> Self {
        let d = config.head_dim;
        let base = config.rope_theta;
        // As transformers: 1 / base^(arange(0, d, 2) / d), computed in f32 after an int64 arange.
        let mut inv: Vec<f64> =
            (0..d / 2).map(|i| 1.0 / (base as f32).powf((2 * i) as f32 / d as f32) as f64).collect();
        if let Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) = &config.rope_scaling
        {
            let old = *original_max_position_embeddings as f64;
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            inv = inv
                .into_iter()
                .map(|f| {
                    let f = f as f32 as f64;
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen > low_wavelen {
                        f / factor
                    } else if wavelen < high_wavelen {
                        f
                    } else {
                        let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect();
        }
        Self { inv_freq: inv.into_iter().map(|x| x as f32).collect() }
    }

    /// `cos` and `sin` for `positions` `[batch, seq]`, shaped `[batch, 1, seq, head_dim]`, in `dtype`.
    pub fn cos_sin<B: Backend>(&self, positions: Tensor<B, 2, Int>, dtype: DType) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, s] = positions.dims();
        let (cos, sin) = self.half_tables(positions);
        let d = 2 * self.inv_freq.len();
        let cos = Tensor::cat(vec![cos.clone(), cos], 1).reshape([b, 1, s, d]);
        let sin = Tensor::cat(vec![sin.clone(), sin], 1).reshape([b, 1, s, d]);
        if dtype == DType::F32 {
            (cos, sin)
        } else {
            (cos.cast(dtype), sin.cast(dtype))
        }
    }

    /// `cos` and `sin` of every position's frequencies, `[batch * seq, head_dim / 2]`, f32.
    fn half_tables<B: Backend>(&self, positions: Tensor<B, 2, Int>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let device = positions.device();
        let [b, s] = positions.dims();
        let half = self.inv_freq.len();
        let inv = Tensor::<B, 1>::from_data(TensorData::new(self.inv_freq.clone(), [half]), (&device, DType::F32));
        let pos = positions.float().cast(DType::F32).reshape([b * s, 1]);
        let freqs = pos * inv.unsqueeze::<2>(); // [b*s, d/2]
        (freqs.clone().cos(), freqs.sin())
    }

    /// The tables [`Self::apply_rows`] takes, for `heads` heads: `[batch * seq * heads, head_dim]`
    /// (one row per token and head, as the projections lay them out), `cos` and a `sin` that carries
    /// rotate-half's sign (`[-sin, sin]`), both multiplied by `scale` (the attention's
    /// `1/sqrt(head_dim)` folded into the queries), in `dtype`. Built once per forward pass.
    pub fn tables<B: Backend>(
        &self,
        positions: Tensor<B, 2, Int>,
        heads: usize,
        scale: f64,
        dtype: DType,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let (cos, sin) = self.half_tables(positions);
        self.spread(cos, sin, heads, scale, dtype)
    }

    /// [`Self::tables`] for two head counts (queries and keys) from one set of frequencies.
    #[allow(clippy::type_complexity)]
    pub fn tables_qk<B: Backend>(
        &self,
        positions: Tensor<B, 2, Int>,
        heads: (usize, usize),
        scale: (f64, f64),
        dtype: DType,
    ) -> ((Tensor<B, 2>, Tensor<B, 2>), (Tensor<B, 2>, Tensor<B, 2>)) {
        let (cos, sin) = self.half_tables(positions);
        let q = self.spread(cos.clone(), sin.clone(), heads.0, scale.0, dtype);
        let k = self.spread(cos, sin, heads.1, scale.1, dtype);
        (q, k)
    }

    fn spread<B: Backend>(
        &self,
        cos: Tensor<B, 2>,
        sin: Tensor<B, 2>,
        heads: usize,
        scale: f64,
        dtype: DType,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let [n, half] = cos.dims();
        let d = 2 * half;
        let (cos, sin) = if scale == 1.0 { (cos, sin) } else { (cos * scale, sin * scale) };
        let cos = Tensor::cat(vec![cos.clone(), cos], 1);
        let sin = Tensor::cat(vec![sin.clone().neg(), sin], 1);
        // [n, d] -> [n, heads, d] -> [n * heads, d] (materialised: the rows of the activations).
        let rows = |t: Tensor<B, 2>| -> Tensor<B, 2> {
            let t = if heads == 1 { t } else { t.unsqueeze_dim::<3>(1).expand([n, heads, d]).reshape([n * heads, d]) };
            if dtype == DType::F32 {
                t
            } else {
                t.cast(dtype)
            }
        };
        (rows(cos), rows(sin))
    }

    /// Applies the rotation to `x` `[rows, head_dim]` (one row per token and head, contiguous) with
    /// tables from [`Self::tables`]: `x * cos + cat(x2, x1) * sin` — rotate-half with its sign in
    /// `sin`, so only one copy (the half swap) and three element-wise passes on contiguous data.
    pub fn apply_rows<B: Backend>(x: Tensor<B, 2>, cos: &Tensor<B, 2>, sin: &Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, d] = x.dims();
        let x1 = x.clone().slice([0..n, 0..d / 2]);
        let x2 = x.clone().slice([0..n, d / 2..d]);
        let swapped = Tensor::cat(vec![x2, x1], 1);
        x * cos.clone() + swapped * sin.clone()
    }

    /// Applies the rotation to `x` `[batch, heads, seq, head_dim]` with tables from [`Self::cos_sin`].
    pub fn apply<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, h, s, d] = x.dims();
        let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..d / 2]);
        let x2 = x.clone().slice([0..b, 0..h, 0..s, d / 2..d]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos.clone() + rotated * sin.clone()
    }
}
