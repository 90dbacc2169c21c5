//! Gradient clipping by the global L2 norm over all parameters (as `torch.nn.utils.clip_grad_norm_`,
//! which transformers' Trainer uses), not per parameter.
use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{backend::AutodiffBackend, ElementConversion, Tensor};

struct Ids(Vec<(ParamId, usize)>);

impl<B: AutodiffBackend> ModuleVisitor<B> for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push((param.id, D));
    }
}

fn sq_norm<B: AutodiffBackend, const D: usize>(grads: &GradientsParams, id: ParamId) -> f64 {
    match grads.get::<B::InnerBackend, D>(id) {
        Some(g) => g.cast(burn::tensor::DType::F32).powi_scalar(2).sum().into_scalar().elem::<f64>(),
        None => 0.0,
    }
}

fn scale<B: AutodiffBackend, const D: usize>(grads: &mut GradientsParams, id: ParamId, factor: f64) {
    if let Some(g) = grads.remove::<B::InnerBackend, D>(id) {
        grads.register::<B::InnerBackend, D>(id, g * factor);
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
