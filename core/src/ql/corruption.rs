//! Input Corruption (IC; "Document Corruption" in v3 of the paper): split the passage on whitespace
//! and replace each word, independently with probability `p`, by the literal string "_".
//! Only the passage is ever corrupted (never the instruction, never the query).
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The masking token the reference uses.
pub const MASK_WORD: &str = "_";

/// A reproducible RNG for example `index` of `epoch` under run seed `seed`: the same example gets
/// the same corruption in a resumed run as in an uninterrupted one.
pub fn example_rng(seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [epoch, index] {
        x = (x ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 31;
    }
    ChaCha8Rng::seed_from_u64(x)
}

/// Replaces each whitespace-separated word by "_" with probability `p`; words are re-joined with
/// single spaces (as `" ".join(text.split())` would).
pub fn corrupt_words(text: &str, p: f64, rng: &mut impl Rng) -> String {
    let p = p.clamp(0.0, 1.0);
    text.split_whitespace()
        .map(|w| if p > 0.0 && rng.random::<f64>() < p { MASK_WORD } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_zero_and_one() {
        let mut r = example_rng(1, 0, 0);
        assert_eq!(corrupt_words("a  b\tc", 0.0, &mut r), "a b c");
        assert_eq!(corrupt_words("a b c", 1.0, &mut r), "_ _ _");
    }

    #[test]
    fn rate_is_close_to_p_and_reproducible() {
        let text = (0..20000).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        let a = corrupt_words(&text, 0.6, &mut example_rng(7, 1, 3));
        let b = corrupt_words(&text, 0.6, &mut example_rng(7, 1, 3));
        assert_eq!(a, b);
        let c = corrupt_words(&text, 0.6, &mut example_rng(7, 1, 4));
        assert_ne!(a, c);
        let masked = a.split(' ').filter(|w| *w == "_").count() as f64 / 20000.0;
        assert!((masked - 0.6).abs() < 0.02, "{masked}");
        // Unmasked words keep their position.
        for (i, w) in a.split(' ').enumerate() {
            assert!(w == "_" || w == format!("w{i}"));
        }
    }
}
