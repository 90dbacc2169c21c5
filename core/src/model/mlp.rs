//! The SwiGLU feed-forward block: `down_proj(silu(gate_proj(x)) * up_proj(x))`.
use super::linear::Linear;
use crate::weights::WeightFiles;
use burn::module::Module;
use burn::tensor::{backend::Backend, DType, Tensor};

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub gate_proj: Linear<B>,
    pub up_proj: Linear<B>,
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    pub fn load(w: &WeightFiles, prefix: &str, hidden: usize, inter: usize, device: &B::Device, dtype: DType) -> Self {
        Self {
            gate_proj: Linear::load(w, &format!("{prefix}.gate_proj"), hidden, inter, false, device, dtype),
            up_proj: Linear::load(w, &format!("{prefix}.up_proj"), hidden, inter, false, device, dtype),
            down_proj: Linear::load(w, &format!("{prefix}.down_proj"), inter, hidden, false, device, dtype),
        }
    }

    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = super::cpu_kernels::swiglu(self.gate_proj.forward(x.clone()), self.up_proj.forward(x));
        self.down_proj.forward(h)
    }
}
