//! The optimizer of both stages: AdamW (decoupled weight decay, bias correction), as
//! `torch.optim.AdamW` that transformers' Trainer and the reference implementation use, with their
//! defaults (betas 0.9/0.999, eps 1e-8).
//!
//! Why not Burn's `AdamW` as is: on the CPU backend it runs ~14 element-wise passes per parameter,
//! each allocating a parameter-sized tensor; for full fine-tuning (stage 1, every weight trained)
//! that was ~0.65 s of a 5.8 s step of SmolLM2-135M on 2 cores. [`FusedAdamW`] runs Burn's formula
//! operation for operation in one multi-threaded pass, in place
//! ([`crate::model::cpu_kernels::adamw_update`]), and is Burn's `AdamW` everywhere else (GPU
//! backends, other dtypes). Its state is Burn's `AdamWState`, so checkpoints' optimizer records are
//! unchanged (older checkpoints resume).
use crate::model::cpu_kernels::{adamw_update, AdamWScalars};
use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, SimpleOptimizer};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// AdamW with a fused CPU step (see the module docs).
#[derive(Clone)]
pub struct FusedAdamW {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    /// Burn's `AdamW` with the same settings (no AMSGrad, plain decay), for other backends.
    plain: AdamW,
}

impl FusedAdamW {
    /// Betas 0.9/0.999, eps 1e-8 (torch's defaults), and `weight_decay`.
    pub fn new(weight_decay: f32) -> Self {
        let (beta_1, beta_2, epsilon) = (0.9, 0.999, 1e-8);
        let plain = AdamWConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Self { beta_1, beta_2, epsilon, weight_decay, plain }
    }
}

impl<B: Backend> SimpleOptimizer<B> for FusedAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let time = state.as_ref().map_or(0, |s| s.momentum.time) + 1;
        if state.as_ref().is_some_and(|s| s.momentum.max_moment_2.is_some()) {
            // An AMSGrad state (not written by llmql): Burn's formula handles it.
            return self.plain.step(lr, tensor, grad, state);
        }
        let scalars = AdamWScalars {
            lr,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            time: time as i32,
        };
        let moments = state.map(|s| (s.momentum.moment_1, s.momentum.moment_2));
        match adamw_update(tensor, grad, moments, &scalars) {
            Ok((p, m, v)) => (p, Some(AdamWState { momentum: AdaptiveMomentumState::new(time, m, v) })),
            Err((tensor, grad, moments)) => {
                let state = moments.map(|(m, v)| AdamWState { momentum: AdaptiveMomentumState::new(time - 1, m, v) });
                self.plain.step(lr, tensor, grad, state)
            }
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <AdamW as SimpleOptimizer<B>>::to_device(state, device)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, TensorData};

    type B = Flex;

    /// Five steps of the fused update equal Burn's `AdamW` bit for bit (with and without weight
    /// decay, shared and unique buffers, a non-contiguous gradient); and the fused path is the one
    /// taken on this backend.
    #[test]
    fn fused_equals_burns_adamw() {
        let device = Default::default();
        for wd in [0.0f32, 0.01] {
            let fused = FusedAdamW::new(wd);
            let plain = fused.plain.clone();
            let mut p1 = Tensor::<B, 2>::random([37, 53], Distribution::Normal(0.0, 1.0), &device);
            let mut p2 = p1.clone();
            let (mut s1, mut s2) = (None, None);
            for step in 0..5 {
                let g = Tensor::<B, 2>::random([53, 37], Distribution::Normal(0.0, 0.1), &device).transpose();
                let lr = 1e-3 * (step + 1) as f64;
                // On odd steps a second reference to the parameter: the fused step must copy, not
                // write through it; on even steps the buffer is updated in place.
                let keep = (step % 2 == 1).then(|| p1.clone());
                let before = p1.to_data();
                (p1, s1) = fused.step(lr, p1, g.clone(), s1);
                (p2, s2) = <AdamW as SimpleOptimizer<B>>::step(&plain, lr, p2, g, s2);
                assert_ne!(before, p1.to_data(), "the step moved the parameter");
                if let Some(keep) = keep {
                    assert_eq!(keep.to_data(), before, "a shared buffer is not written through");
                }
                assert_eq!(p1.to_data(), p2.to_data(), "parameter, step {step}, wd {wd}");
                let (a, b) = (&s1.as_ref().unwrap().momentum, &s2.as_ref().unwrap().momentum);
                assert_eq!(a.time, b.time);
                assert_eq!(a.moment_1.to_data(), b.moment_1.to_data(), "first moment, step {step}");
                assert_eq!(a.moment_2.to_data(), b.moment_2.to_data(), "second moment, step {step}");
            }
        }
        let (p, g) = (Tensor::<B, 1>::ones([4], &device), Tensor::<B, 1>::ones([4], &device));
        let k = AdamWScalars { lr: 0.1, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, weight_decay: 0.0, time: 1 };
        assert!(adamw_update(p, g, None, &k).is_ok(), "flex f32 takes the fused kernel");
        let untouched = Tensor::<B, 1>::from_data(TensorData::from([1.0f32, 2.0]), &device);
        let (same, _) = FusedAdamW::new(0.0).step(0.0, untouched.clone(), untouched.zeros_like(), None);
        assert_eq!(same.to_data(), untouched.to_data(), "zero lr, zero gradient: no change");
    }
}
