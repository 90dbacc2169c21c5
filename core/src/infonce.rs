//! The stage-2 loss (the method's "Stage 2"): InfoNCE over every passage of the batch. Query i's
//! group is passages `[i*g, (i+1)*g)` (positive first, then its hard negatives); every other
//! passage in the batch is an in-batch negative. `loss = CE(q · pᵀ / temperature, target = i*g)`.
use burn::tensor::{activation::log_softmax, backend::Backend, Int, Tensor, TensorData};

/// Mean InfoNCE loss (a one-element tensor). `q`: `[n, d]`, `p`: `[n * group, d]`.
pub fn infonce_loss<B: Backend>(q: Tensor<B, 2>, p: Tensor<B, 2>, group: usize, temperature: f64) -> Tensor<B, 1> {
    let n = q.dims()[0];
    assert_eq!(p.dims()[0], n * group, "passages must be queries x group");
    let scores = q.matmul(p.transpose()) / temperature;
    let targets: Vec<i64> = (0..n).map(|i| (i * group) as i64).collect();
    let t = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [n]), &scores.device());
    log_softmax(scores, 1).gather(1, t.unsqueeze_dim(1)).mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    /// Independent computation in f64.
    fn reference(q: &[Vec<f64>], p: &[Vec<f64>], g: usize, t: f64) -> f64 {
        let mut total = 0.0;
        for (i, qi) in q.iter().enumerate() {
            let s: Vec<f64> = p.iter().map(|pj| qi.iter().zip(pj).map(|(a, b)| a * b).sum::<f64>() / t).collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + s.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
            total += lse - s[i * g];
        }
        total / q.len() as f64
    }

    #[test]
    fn matches_an_independent_computation() {
        let q = vec![vec![0.6, 0.8, 0.0], vec![0.0, 0.6, 0.8]];
        let p = vec![
            vec![0.6, 0.8, 0.0],
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
            vec![0.0, 0.8, 0.6],
            vec![0.8, 0.0, 0.6],
        ];
        let flat = |v: &Vec<Vec<f64>>| v.iter().flatten().map(|x| *x as f32).collect::<Vec<f32>>();
        let dev = Default::default();
        let tq = Tensor::<Flex, 2>::from_data(TensorData::new(flat(&q), [2, 3]), &dev);
        let tp = Tensor::<Flex, 2>::from_data(TensorData::new(flat(&p), [6, 3]), &dev);
        for temp in [0.01, 0.05, 1.0] {
            let ours: f32 = infonce_loss(tq.clone(), tp.clone(), 3, temp).into_scalar();
            let want = reference(&q, &p, 3, temp);
            assert!((ours as f64 - want).abs() < 1e-4 * want.abs().max(1.0), "t={temp}: {ours} vs {want}");
        }
    }
}
