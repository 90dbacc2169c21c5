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
        let dims = x.dims();
        let rows: usize = dims[..D - 1].iter().product();
        let x2: Tensor<B, 2> = x.reshape([rows, dims[D - 1]]);
        // Mixed precision: weights kept in another dtype are cast to the activations' (the cast is
        // differentiable, so gradients reach the master weights).
        let w = self.weight.val();
        let w = if w.dtype() == x2.dtype() { w } else { w.cast(x2.dtype()) };
        let y2 = match &self.lora {
            Some(ad) => super::cpu_kernels::matmul(x2.clone(), w) + ad.forward(x2),
            None => super::cpu_kernels::matmul(x2, w),
        };
        let mut out_dims = dims;
        out_dims[D - 1] = self.d_out();
        let y: Tensor<B, D> = y2.reshape(out_dims);
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
