//! One safe entry to the `gemm` crate (the GEMM Burn's flex backend itself calls), for the f32
//! matrix products llmql calls directly: the fused 2-D matmul of the CPU kernels
//! (`model/cpu_kernels.rs`) and k-means assignment in the IVF index (`index/dot.rs`).
//!
//! Operands are strided views into slices (so transposes and sub-matrices need no copy); the view is
//! bounds-checked here, once, and the `unsafe` call lives only in this file.

/// A `[rows, cols]` f32 matrix inside `data`: element `(i, j)` is `data[start + i * row_stride + j *
/// col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatView<'a> {
    pub data: &'a [f32],
    pub start: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatView<'a> {
    /// A contiguous row-major `[rows, cols]` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, start: 0, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The same elements read as the transpose, `[cols, rows]` (no copy).
    pub fn transposed(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// True when every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return self.start <= self.data.len();
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .and_then(|r| (self.cols - 1).checked_mul(self.col_stride).and_then(|c| r.checked_add(c)))
            .and_then(|o| o.checked_add(self.start));
        matches!(last, Some(l) if l < self.data.len())
    }
}

/// `a . b` as a new row-major `[a.rows, b.cols]` matrix, on rayon's pool when it is large enough to
/// pay (`m * n * k >= parallel_from`). `None` when the shapes disagree or a view leaves its slice.
pub fn matmul(a: MatView, b: MatView, parallel_from: usize) -> Option<Vec<f32>> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || !a.in_bounds() || !b.in_bounds() {
        return None;
    }
    let mut out = vec![0f32; m * n];
    if m == 0 || n == 0 || k == 0 {
        return Some(out);
    }
    let parallelism = if m * n * k >= parallel_from {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: both views were checked to lie inside their slices (every element index < len), the
    // strides fit isize (they index a slice); `out` is `m * n` floats with row stride `n`, all
    // written (`read_dst = false`, `k > 0`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr().add(a.start),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr().add(b.start),
            b.col_stride as isize,
            b.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_products_match_the_plain_sums_and_bad_views_are_refused() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        // a [m, k] times b^T, b stored [n, k].
        let got = matmul(MatView::row_major(&a, m, k), MatView::row_major(&b, n, k).transposed(), 1).unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
                assert!((got[i * n + j] - want).abs() < 1e-5);
            }
        }
        assert!(matmul(MatView::row_major(&a, m, k), MatView::row_major(&b, n, k), 1).is_none(), "shapes");
        let past = MatView { start: 1, ..MatView::row_major(&a, m, k) };
        assert!(matmul(past, MatView::row_major(&b, n, k).transposed(), 1).is_none(), "out of bounds");
    }
}
