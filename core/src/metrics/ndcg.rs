//! nDCG as trec_eval's `ndcg` / `ndcg_cut_k`: gain = relevance grade (grades <= 0, and unjudged documents, give
//! nothing), discount log2(rank + 1), normalised by the DCG of the ideal ranking of all the query's judged
//! documents, cut at the same k. 0 when the query has no positively graded document.

/// `ranked`: grades of the retrieved documents in rank order (`None` = unjudged); `judged`: every judged grade
/// of the query (any order); `cutoff`: k, or `None` for the whole ranking.
pub fn ndcg(ranked: &[Option<i32>], judged: &[i32], cutoff: Option<usize>) -> f64 {
    let k = cutoff.unwrap_or(usize::MAX);
    let mut ideal: Vec<i32> = judged.iter().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg = dcg(ideal.iter().map(|&g| Some(g)), k);
    if idcg <= 0.0 {
        return 0.0;
    }
    dcg(ranked.iter().copied(), k) / idcg
}

fn dcg(grades: impl Iterator<Item = Option<i32>>, k: usize) -> f64 {
    grades
        .take(k)
        .enumerate()
        .filter_map(|(i, g)| match g {
            Some(g) if g > 0 => Some(g as f64 / ((i + 2) as f64).log2()),
            _ => None,
        })
        .fold(0.0, |a, b| a + b) // not .sum(): an empty f64 sum is -0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn perfect_ranking_is_one() {
        close(ndcg(&[Some(3), Some(2), Some(1)], &[1, 3, 2, 0], Some(10)), 1.0);
        close(ndcg(&[Some(3), Some(2), Some(1), None], &[1, 3, 2], None), 1.0);
    }

    #[test]
    fn hand_computed_graded_case() {
        // Ranked grades: -1 (no gain), 1, unjudged, 2; judged 3, 2, 1, -1.
        let ranked = [Some(-1), Some(1), None, Some(2)];
        let judged = [1, -1, 2, 3];
        let ideal = |k: usize| [3.0, 2.0 / 3f64.log2(), 0.5].iter().take(k).sum::<f64>();
        close(ndcg(&ranked, &judged, Some(1)), 0.0);
        close(ndcg(&ranked, &judged, Some(2)), (1.0 / 3f64.log2()) / ideal(2));
        close(ndcg(&ranked, &judged, Some(3)), (1.0 / 3f64.log2()) / ideal(3));
        let full = (1.0 / 3f64.log2() + 2.0 / 5f64.log2()) / ideal(3);
        close(ndcg(&ranked, &judged, Some(10)), full);
        close(ndcg(&ranked, &judged, None), full);
        // Matches pytrec_eval's value for the same case.
        close(ndcg(&ranked, &judged, None), 0.3133823808702839);
    }

    #[test]
    fn no_positive_judgment_gives_zero() {
        assert_eq!(ndcg(&[Some(0), None], &[0, 0], Some(10)), 0.0);
        assert_eq!(ndcg(&[], &[2], Some(10)), 0.0);
    }
}
