//! The inner product of two f32 slices, the one kernel every index scores with (and its int8 and
//! matrix forms, for the IVF index).
//!
//! A plain `iter().sum()` adds in order and cannot be vectorised (float addition is not
//! associative); here eight independent accumulators let the compiler use SIMD lanes, and on x86-64
//! with AVX2 + FMA (checked at run time) the same loop is compiled for those instructions. The
//! result differs from the in-order sum only by rounding (a few ulps for unit vectors).

/// `sum(a[i] * b[i])` over the shorter of the two slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_portable(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<true>(a, b)
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<false>(a, b)
}

/// `FMA`: fused multiply-add (only where the CPU has it: elsewhere `mul_add` is a slow libm call).
#[inline(always)]
fn dot_lanes<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; L];
    let (ac, ar) = a.split_at(n - n % L);
    let (bc, br) = b.split_at(n - n % L);
    for (x, y) in ac.chunks_exact(L).zip(bc.chunks_exact(L)) {
        for i in 0..L {
            acc[i] = if FMA { x[i].mul_add(y[i], acc[i]) } else { acc[i] + x[i] * y[i] };
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// `sum(q[i] * code[i])` for a query in f32 and an int8 code (the IVF index's approximate score;
/// the code's per-dimension scale is folded into `q` by the caller).
#[inline]
pub fn dot_i8(q: &[f32], code: &[i8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { dot_i8_avx2(q, code) };
        }
    }
    dot_i8_lanes::<false>(q, code)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_i8_avx2(q: &[f32], code: &[i8]) -> f32 {
    dot_i8_lanes::<true>(q, code)
}

#[inline(always)]
fn dot_i8_lanes<const FMA: bool>(q: &[f32], code: &[i8]) -> f32 {
    const L: usize = 16;
    let n = q.len().min(code.len());
    let (q, code) = (&q[..n], &code[..n]);
    let mut acc = [0f32; L];
    let (qc, qr) = q.split_at(n - n % L);
    let (cc, cr) = code.split_at(n - n % L);
    for (x, y) in qc.chunks_exact(L).zip(cc.chunks_exact(L)) {
        for i in 0..L {
            let c = y[i] as f32;
            acc[i] = if FMA { x[i].mul_add(c, acc[i]) } else { acc[i] + x[i] * c };
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in qr.iter().zip(cr) {
        s += x * *y as f32;
    }
    s
}

/// `out[i * n + j] = <a_i, b_j>` for the rows of `a` (`[m, k]`) and of `b` (`[n, k]`), both row-major:
/// `a . b^T` by the `gemm` crate on rayon's pool (what k-means assigns rows to centroids with).
#[cfg(not(target_arch = "wasm32"))]
pub fn matmul_transposed(a: &[f32], b: &[f32], k: usize) -> Vec<f32> {
    use crate::gemm::{matmul, MatView};
    let (m, n) = (a.len() / k.max(1), b.len() / k.max(1));
    assert!(a.len() == m * k && b.len() == n * k, "operands must be whole rows of length k");
    matmul(MatView::row_major(a, m, k), MatView::row_major(b, n, k).transposed(), 1 << 21)
        .expect("row-major views of whole rows are in bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_dot_and_matmul_match_the_plain_sums() {
        for n in [0, 5, 16, 33, 576] {
            let q: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let c: Vec<i8> = (0..n).map(|i| ((i * 53 % 255) as i16 - 127) as i8).collect();
            let want: f64 = q.iter().zip(&c).map(|(x, y)| *x as f64 * *y as f64).sum();
            let got = dot_i8(&q, &c) as f64;
            assert!((got - want).abs() <= 1e-3 * (1.0 + want.abs()), "n={n}: {got} vs {want}");
        }
        let k = 37;
        let a: Vec<f32> = (0..5 * k).map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0).collect();
        let b: Vec<f32> = (0..3 * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0).collect();
        let out = matmul_transposed(&a, &b, k);
        for i in 0..5 {
            for j in 0..3 {
                let want = dot(&a[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]);
                assert!((out[i * 3 + j] - want).abs() < 1e-4, "({i},{j})");
            }
        }
    }

    #[test]
    fn matches_the_sum_in_f64() {
        for n in [0, 1, 7, 16, 17, 64, 576, 1000] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let got = dot(&a, &b) as f64;
            assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "n={n}: {got} vs {want}");
        }
    }
}
