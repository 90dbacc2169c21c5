//! The Attention Stop mask (AS; "Attention Block" in v3 of the paper).
//!
//! Every position after the separator (the document's EOS) may attend only to the separator and to
//! earlier positions after it; the separator and the document keep ordinary causal attention. So
//! the whole document reaches the query through one hidden state: the separator's.
//!
//! Built from each example's own separator position — no hard-coded offsets — for right-padded
//! batches of unequal examples. Padding columns are never attendable from real rows.
use burn::tensor::{backend::Backend, Bool, Tensor, TensorData};

/// Whether query position `i` may attend key position `j` (row of length `len`, separator `sep`).
pub fn allowed(i: usize, j: usize, sep: Option<usize>, len: usize) -> bool {
    if j > i {
        return false;
    }
    if i >= len {
        // A padding row: plain causal (its outputs are never used; this keeps every row non-empty).
        return true;
    }
    if j >= len {
        return false;
    }
    match sep {
        Some(s) if i > s => j >= s,
        _ => true,
    }
}

/// Host-side `[b, s, s]` mask, `true` = masked (Burn's convention).
pub fn attention_stop_mask_host(seps: &[Option<usize>], lengths: &[usize], seq: usize) -> Vec<bool> {
    let mut m = vec![true; seps.len() * seq * seq];
    for (b, (&sep, &len)) in seps.iter().zip(lengths).enumerate() {
        for i in 0..seq {
            for j in 0..=i {
                m[(b * seq + i) * seq + j] = !allowed(i, j, sep, len);
            }
        }
    }
    m
}

/// `[b, 1, s, s]` boolean mask for [`crate::model::AttentionMask::Explicit`] (`true` = masked).
/// `seps[i] = None` gives plain causal attention for that row.
pub fn attention_stop_mask<B: Backend>(
    seps: &[Option<usize>],
    lengths: &[usize],
    seq: usize,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let b = seps.len();
    let m = attention_stop_mask_host(seps, lengths, seq);
    Tensor::from_data(TensorData::new(m, [b, 1, seq, seq]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_for_one_example() {
        // tokens: d0 d1 d2 SEP q0 q1 EOS pad
        let seq = 8;
        let m = attention_stop_mask_host(&[Some(3)], &[7], seq);
        let ok = |i: usize, j: usize| !m[i * seq + j];
        // Document and separator: causal.
        assert!(ok(2, 0) && ok(3, 0) && ok(3, 3) && !ok(2, 3));
        // Query positions: separator and later only.
        assert!(ok(4, 3) && ok(4, 4) && !ok(4, 2) && !ok(4, 0));
        assert!(ok(6, 3) && ok(6, 5) && !ok(6, 1));
        // Never the future, never padding from a real row.
        assert!(!ok(4, 5) && !ok(6, 7));
        // Padding row: causal, never empty.
        assert!(ok(7, 0) && ok(7, 7));
    }

    #[test]
    fn rows_without_separator_are_causal() {
        let seq = 4;
        let m = attention_stop_mask_host(&[None], &[4], seq);
        for i in 0..seq {
            for j in 0..seq {
                assert_eq!(!m[i * seq + j], j <= i);
            }
        }
    }
}
