//! Recall at k (trec_eval `recall_k`): relevant documents (grade >= `rel`) in the top k / relevant judged
//! documents of the query; 0 when none is judged relevant.
use super::is_rel;

pub fn recall(ranked: &[Option<i32>], num_rel: usize, rel: i32, cutoff: usize) -> f64 {
    if num_rel == 0 {
        return 0.0;
    }
    let hits = ranked.iter().take(cutoff).filter(|&&g| is_rel(g, rel)).count();
    hits as f64 / num_rel as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_relevant_in_top_k_over_all_relevant() {
        let ranked = [Some(1), None, Some(2), Some(0), Some(3)];
        assert_eq!(recall(&ranked, 4, 1, 1), 0.25);
        assert_eq!(recall(&ranked, 4, 1, 3), 0.5);
        assert_eq!(recall(&ranked, 4, 1, 100), 0.75);
        assert_eq!(recall(&ranked, 2, 2, 3), 0.5);
        assert_eq!(recall(&ranked, 0, 1, 10), 0.0);
    }
}
