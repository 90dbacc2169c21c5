//! A linear layer holding an HF `[out, in]` weight transposed to `[in, out]` (Burn's layout).
use crate::weights::{named_param, WeightFiles};
use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, DType, Tensor};

#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_in, d_out]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// A LoRA adapter, computed in factored form beside the frozen weight (see `crate::lora`).
    pub lora: Option<crate::lora::LoraAdapter<B>>,
}

impl<B: Backend> Linear<B> {
    pub fn new(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self { weight: Param::from_tensor(weight), bias: bias.map(Param::from_tensor), lora: None }
    }

    /// Loads `{prefix}.weight` (`[d_out, d_in]` on disk) and, if `bias`, `{prefix}.bias`.
    pub fn load(
        w: &WeightFiles,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        device: &B::Device,
        dtype: DType,
    ) -> Self {
        let wname = format!("{prefix}.weight");
        let bname = format!("{prefix}.bias");
        let weight: Tensor<B, 2> = w.take(&wname, [d_out, d_in], device, dtype);
        let bias = bias.then(|| named_param(&bname, w.take(&bname, [d_out], device, dtype)));
        Self { weight: named_param(&wname, weight.transpose()), bias, lora: None }
    }

    pub fn d_in(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn d_out(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        // One `[rows, d_in] x [d_in, d_out]` GEMM rather than a batched matmul over leading dims.
        let y = on_rows(x, |x2| {
            // Mixed precision: weights kept in another dtype are cast to the activations' (the cast
            // is differentiable, so gradients reach the master weights).
            let w = self.weight.val();
            let w = if w.dtype() == x2.dtype() { w } else { w.cast(x2.dtype()) };
            match &self.lora {
                Some(ad) => super::cpu_kernels::matmul(x2.clone(), w) + ad.forward(x2),
                None => super::cpu_kernels::matmul(x2, w),
            }
        });
        match &self.bias {
            Some(b) => {
                let b = b.val();
                let b = if b.dtype() == y.dtype() { b } else { b.cast(y.dtype()) };
                y + b.unsqueeze()
            }
            None => y,
        }
    }
}

/// `f` applied to `x` `[..., n]` seen as the 2-D `[rows, n]` (one GEMM instead of a batched matmul
/// over the leading dimensions); its `[rows, m]` result reshaped back to `[..., m]`.
pub(crate) fn on_rows<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    f: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Tensor<B, D> {
    let mut dims = x.dims();
    let rows = dims[..D - 1].iter().product();
    let y = f(x.reshape([rows, dims[D - 1]]));
    dims[D - 1] = y.dims()[1];
    y.reshape(dims)
}
