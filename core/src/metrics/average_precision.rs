//! Average precision (trec_eval `map`, and `map_cut_k` with a cutoff): the sum of the precision at the rank of
//! each relevant document (grade >= `rel`) retrieved within the cutoff, divided by the number of relevant judged
//! documents of the query (not by the number retrieved); 0 when none is judged relevant.
use super::is_rel;

pub fn average_precision(ranked: &[Option<i32>], num_rel: usize, rel: i32, cutoff: Option<usize>) -> f64 {
    if num_rel == 0 {
        return 0.0;
    }
    let k = cutoff.unwrap_or(usize::MAX);
    let mut hits = 0usize;
    let mut sum = 0.0;
    for (i, &g) in ranked.iter().take(k).enumerate() {
        if is_rel(g, rel) {
            hits += 1;
            sum += hits as f64 / (i + 1) as f64;
        }
    }
    sum / num_rel as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn hand_computed() {
        // Relevant at ranks 1 and 3, 3 relevant judged: (1/1 + 2/3) / 3.
        let ranked = [Some(1), None, Some(2), Some(0)];
        close(average_precision(&ranked, 3, 1, None), (1.0 + 2.0 / 3.0) / 3.0);
        close(average_precision(&ranked, 3, 1, Some(2)), 1.0 / 3.0);
        // rel=2: only rank 3 counts, 1 relevant judged.
        close(average_precision(&ranked, 1, 2, None), 1.0 / 3.0);
        assert_eq!(average_precision(&ranked, 0, 1, None), 0.0);
    }

    #[test]
    fn matches_pytrec_eval_case() {
        // Same query as the nDCG case: grades -1, 1, unjudged, 2 with 3 relevant judged (pytrec_eval: 1/3, 1/6).
        let ranked = [Some(-1), Some(1), None, Some(2)];
        close(average_precision(&ranked, 3, 1, None), 0.3333333333333333);
        close(average_precision(&ranked, 3, 1, Some(2)), 0.16666666666666666);
        close(average_precision(&ranked, 2, 2, None), 0.125);
    }
}
