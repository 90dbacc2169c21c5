//! Reciprocal rank: 1 / rank of the first document with grade >= `rel` (trec_eval `recip_rank`; with a cutoff,
//! the MS MARCO `MRR@k` that ir-measures uses for `RR@k`), 0 when there is none within the cutoff.
use super::is_rel;

pub fn reciprocal_rank(ranked: &[Option<i32>], rel: i32, cutoff: Option<usize>) -> f64 {
    let k = cutoff.unwrap_or(usize::MAX);
    ranked.iter().take(k).position(|&g| is_rel(g, rel)).map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_relevant_within_cutoff() {
        let ranked = [None, Some(0), Some(1), Some(2)];
        assert_eq!(reciprocal_rank(&ranked, 1, None), 1.0 / 3.0);
        assert_eq!(reciprocal_rank(&ranked, 2, None), 0.25);
        assert_eq!(reciprocal_rank(&ranked, 1, Some(3)), 1.0 / 3.0);
        assert_eq!(reciprocal_rank(&ranked, 1, Some(2)), 0.0);
        assert_eq!(reciprocal_rank(&ranked, 3, None), 0.0);
        assert_eq!(reciprocal_rank(&[], 1, Some(10)), 0.0);
    }
}
