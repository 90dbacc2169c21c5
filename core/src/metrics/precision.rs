//! Precision at k (trec_eval `P_k`): relevant documents (grade >= `rel`) in the top k, divided by k even when
//! fewer than k documents were retrieved.
use super::is_rel;

pub fn precision(ranked: &[Option<i32>], rel: i32, cutoff: usize) -> f64 {
    let hits = ranked.iter().take(cutoff).filter(|&&g| is_rel(g, rel)).count();
    hits as f64 / cutoff as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divides_by_k_always() {
        let ranked = [Some(1), None, Some(2)];
        assert_eq!(precision(&ranked, 1, 1), 1.0);
        assert_eq!(precision(&ranked, 1, 2), 0.5);
        assert_eq!(precision(&ranked, 1, 5), 0.4);
        assert_eq!(precision(&ranked, 2, 5), 0.2);
        assert_eq!(precision(&[], 1, 10), 0.0);
    }
}
