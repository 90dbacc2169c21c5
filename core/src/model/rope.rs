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
        let mut inv: Vec<f64> = (0..d / 2)
            .map(|i| 1.0 / (base as f32).powf((2 * i) as f32 / d as f32) as f64)
            .collect();
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
        Self {
            inv_freq: inv.into_iter().map(|x| x as f32).collect(),
        }
    }

    /// `cos` and `sin` for `positions` `[batch, seq]`, shaped `[batch, 1, seq, head_dim]`, in `dtype`.
    pub fn cos_sin<B: Backend>(
        &self,
        positions: Tensor<B, 2, Int>,
        dtype: DType,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let device = positions.device();
        let half = self.inv_freq.len();
        let inv = Tensor::<B, 1>::from_data(
            TensorData::new(self.inv_freq.clone(), [half]),
            (&device, DType::F32),
        );
        let pos = positions.float().cast(DType::F32);
        let freqs = pos.unsqueeze_dim::<3>(2) * inv.unsqueeze::<3>(); // [b, s, d/2]
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2); // [b, s, d]
        let cos = emb.clone().cos().unsqueeze_dim::<4>(1);
        let sin = emb.sin().unsqueeze_dim::<4>(1);
        if dtype == DType::F32 {
            (cos, sin)
        } else {
            (cos.cast(dtype), sin.cast(dtype))
        }
    }

    /// Applies the rotation to `x` `[batch, heads, seq, head_dim]`.
    pub fn apply<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, h, s, d] = x.dims();
        let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..d / 2]);
        let x2 = x.clone().slice([0..b, 0..h, 0..s, d / 2..d]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos.clone() + rotated * sin.clone()
    }
}
