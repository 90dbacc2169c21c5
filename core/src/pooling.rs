//! Pooling a sequence's hidden states into one vector, and L2 normalisation.
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The hidden state of the last token (the appended EOS): LLM-QL / RepLLaMA.
    Eos,
    /// The mean over the real (non-padding) tokens.
    Mean,
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "eos" | "last" => Ok(Pooling::Eos),
            "mean" => Ok(Pooling::Mean),
            o => Err(format!("unknown pooling {o:?} (expected eos or mean)")),
        }
    }
}

impl Pooling {
    /// The name `FromStr` reads.
    pub fn name(&self) -> &'static str {
        match self {
            Pooling::Eos => "eos",
            Pooling::Mean => "mean",
        }
    }
}

/// Rows `hidden[i, last[i]]` of a right-padded batch `[b, s, h]` -> `[b, h]`.
pub fn eos_pool<B: Backend>(hidden: Tensor<B, 3>, lengths: &[usize]) -> Tensor<B, 2> {
    let [b, s, h] = hidden.dims();
    let idx: Vec<i64> = lengths.iter().enumerate().map(|(i, &n)| (i * s + n - 1) as i64).collect();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [b]), &hidden.device());
    hidden.reshape([b * s, h]).select(0, idx)
}

/// Mean over the first `lengths[i]` positions of each row of `[b, s, h]` -> `[b, h]`.
pub fn mean_pool<B: Backend>(hidden: Tensor<B, 3>, lengths: &[usize]) -> Tensor<B, 2> {
    let [b, s, _] = hidden.dims();
    let mut m = vec![0f32; b * s];
    for (i, &n) in lengths.iter().enumerate() {
        for j in 0..n {
            m[i * s + j] = 1.0 / n as f32;
        }
    }
    let w = Tensor::<B, 2>::from_data(TensorData::new(m, [b, s]), (&hidden.device(), hidden.dtype()));
    (hidden * w.unsqueeze_dim::<3>(2)).sum_dim(1).squeeze_dim::<2>(1)
}

/// Divides each row by its L2 norm (rows of zeros stay zero).
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
