//! RMSNorm as HF computes it: in f32, then back to the compute dtype, then scaled by the weight.
use crate::weights::{named_param, WeightFiles};
use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, DType, FloatDType, Tensor};

#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    pub fn new(weight: Tensor<B, 1>, eps: f64) -> Self {
        Self { weight: Param::from_tensor(weight), eps }
    }

    pub fn load(w: &WeightFiles, name: &str, dim: usize, eps: f64, device: &B::Device, dtype: DType) -> Self {
        let wname = format!("{name}.weight");
        Self { weight: named_param(&wname, w.take(&wname, [dim], device, dtype)), eps }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if let Some(y) = super::cpu_kernels::rms_norm(&x, &self.weight.val(), self.eps) {
            return y;
        }
        let dtype = x.dtype();
        let x32 = if dtype == DType::F32 { x } else { x.cast(FloatDType::F32) };
        let var = x32.clone().powi_scalar(2).mean_dim(D - 1);
        let normed = x32 * (var + self.eps).sqrt().recip();
        let normed = if dtype == DType::F32 { normed } else { normed.cast(dtype) };
        let w = self.weight.val();
        let w = if w.dtype() == dtype { w } else { w.cast(dtype) };
        normed * w.unsqueeze()
    }
}
