//! Group sampling for contrastive training, as Tevatron's `TrainDataset` does it:
//! the positive is chosen per epoch from a seeded hash; with fewer than `group - 1` negatives they
//! are sampled with replacement; otherwise a seeded shuffle is read through an epoch-offset window,
//! so successive epochs see different negatives.
use crate::ql::corruption::example_rng;
use rand::seq::{IndexedRandom, SliceRandom};

/// Indices `(positive, negatives)` into an example's positive and negative lists.
pub fn sample_group(
    item: usize,
    epoch: usize,
    seed: u64,
    n_pos: usize,
    n_neg: usize,
    group: usize,
) -> (usize, Vec<usize>) {
    let hashed = (seed as usize).wrapping_add(item);
    let pos = (hashed + epoch) % n_pos.max(1);
    let k = group.saturating_sub(1);
    let negs: Vec<usize> = if k == 0 || n_neg == 0 {
        Vec::new()
    } else if n_neg < k {
        let all: Vec<usize> = (0..n_neg).collect();
        let mut rng = example_rng(seed, epoch as u64, item as u64);
        (0..k).map(|_| *all.choose(&mut rng).expect("non-empty")).collect()
    } else {
        let offset = epoch * k % n_neg;
        let mut all: Vec<usize> = (0..n_neg).collect();
        all.shuffle(&mut example_rng(seed, u64::MAX, item as u64));
        let doubled: Vec<usize> = all.iter().chain(all.iter()).copied().collect();
        doubled[offset..offset + k].to_vec()
    };
    (pos, negs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_move_with_the_epoch_and_replacement_when_short() {
        let (p0, n0) = sample_group(3, 0, 42, 2, 10, 4);
        let (p1, n1) = sample_group(3, 1, 42, 2, 10, 4);
        assert_ne!(p0, p1, "the positive rotates per epoch");
        assert_eq!(n0.len(), 3);
        assert_ne!(n0, n1);
        // Epoch windows over one shuffle: no repeats within an epoch.
        let mut s = n0.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 3);
        assert_eq!(sample_group(3, 0, 42, 2, 10, 4), (p0, n0));
        let (_, short) = sample_group(5, 0, 1, 1, 2, 6);
        assert_eq!(short.len(), 5);
        assert!(short.iter().all(|&i| i < 2));
        assert_eq!(sample_group(0, 0, 1, 1, 0, 4).1, Vec::<usize>::new());
    }
}
