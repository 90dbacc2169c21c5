//! Gradient clipping by the global L2 norm over all parameters (as `torch.nn.utils.clip_grad_norm_`,
//! which transformers' Trainer uses), not per parameter.
use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{backend::AutodiffBackend, Tensor};

struct Ids(Vec<(ParamId, usize)>);

impl<B: AutodiffBackend> ModuleVisitor<B> for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push((param.id, D));
    }
}

fn sq_norm<B: AutodiffBackend, const D: usize>(grads: &GradientsParams, id: ParamId) -> f64 {
    match grads.get::<B::InnerBackend, D>(id) {
        Some(g) => crate::model::cpu_kernels::sum_squares(g),
        None => 0.0,
    }
}

fn scale<B: AutodiffBackend, const D: usize>(grads: &mut GradientsParams, id: ParamId, factor: f64) {
    if let Some(g) = grads.remove::<B::InnerBackend, D>(id) {
        grads.register::<B::InnerBackend, D>(id, crate::model::cpu_kernels::scale(g, factor));
    }
}

/// The global gradient norm (before clipping). When `max_norm` is set and the norm exceeds it,
/// every gradient is scaled by `max_norm / (norm + 1e-6)`.
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: Option<f64>,
) -> f64 {
    let mut ids = Ids(Vec::new());
    model.visit(&mut ids);
    let mut total = 0.0;
    for &(id, d) in &ids.0 {
        total += match d {
            1 => sq_norm::<B, 1>(grads, id),
            2 => sq_norm::<B, 2>(grads, id),
            3 => sq_norm::<B, 3>(grads, id),
            _ => sq_norm::<B, 4>(grads, id),
        };
    }
    let norm = total.sqrt();
    if let Some(max) = max_norm {
        if norm.is_finite() && norm > max {
            let f = max / (norm + 1e-6);
            for &(id, d) in &ids.0 {
                match d {
                    1 => scale::<B, 1>(grads, id, f),
                    2 => scale::<B, 2>(grads, id, f),
                    3 => scale::<B, 3>(grads, id, f),
                    _ => scale::<B, 4>(grads, id, f),
                }
            }
        }
    }
    norm
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::model::linear::Linear;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;

    type B = Autodiff<Flex>;

    /// The global norm over all parameters, and every gradient scaled so that it becomes `max`.
    #[test]
    fn global_norm_and_scaling() {
        let device = Default::default();
        let lin = Linear::<B>::new(Tensor::zeros([2, 3], &device), Some(Tensor::zeros([3], &device)));
        let x = Tensor::<B, 2>::from_data(TensorData::from([[3.0f32, 4.0]]), &device);
        // d/dW = [[3, 3, 3], [4, 4, 4]], d/db = [1, 1, 1]: norm sqrt(27 + 48 + 3) = sqrt(78).
        let mut grads = GradientsParams::from_grads(lin.forward(x).sum().backward(), &lin);
        let norm = clip_global_norm(&lin, &mut grads, Some(1.0));
        assert!((norm - 78f64.sqrt()).abs() < 1e-6, "{norm}");
        let f = (1.0 / (78f64.sqrt() + 1e-6)) as f32;
        let w = grads.get::<Flex, 2>(lin.weight.id).expect("weight gradient").into_data();
        w.assert_approx_eq::<f32>(
            &TensorData::from([[3.0 * f, 3.0 * f, 3.0 * f], [4.0 * f, 4.0 * f, 4.0 * f]]),
            Default::default(),
        );
        let after = clip_global_norm(&lin, &mut grads, None);
        assert!((after - 1.0).abs() < 1e-5, "{after}");
        assert!((clip_global_norm(&lin, &mut grads, Some(5.0)) - after).abs() < 1e-12, "below max: unchanged");
    }
}
