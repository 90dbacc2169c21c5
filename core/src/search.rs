//! Exact inner-product top-K search over encoded shards (`embeddings[.I].npy` + `ids[.I].txt`).
//!
//! Corpus shards are streamed one at a time and split into blocks, so memory holds one block of
//! passage vectors (plus each query's current top-K), never the whole corpus. Scores are computed
//! on the chosen Burn device (a `[queries, block]` matmul); selection is exact on the host, with
//! ties broken by docid (ascending) so runs are deterministic.
use crate::error::{Error, Result};
use crate::npy::{parse_f32_matrix, read_f32_matrix};
use crate::trec::{Run, RunEntry};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// A matrix of embeddings with one id per row.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub ids: Vec<String>,
    /// Row-major `[ids.len(), dim]`.
    pub values: Vec<f32>,
    pub dim: usize,
}

impl Embeddings {
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Reads one `embeddings*.npy` and its `ids*.txt`, checking they agree.
    pub fn load(npy: &Path, ids: &Path) -> Result<Self> {
        let (values, rows, dim) = read_f32_matrix(npy)?;
        let text = std::fs::read_to_string(ids).map_err(|e| Error::io(ids, e))?;
        Self::from_parts(values, rows, dim, &text, npy, ids)
    }

    /// Builds from the bytes of an `embeddings.npy` and the text of its `ids.txt` (the browser's
    /// path; the names are for messages).
    pub fn from_bytes(npy_bytes: &[u8], ids_text: &str, npy: &Path, ids: &Path) -> Result<Self> {
        let (values, rows, dim) = parse_f32_matrix(npy_bytes, npy)?;
        Self::from_parts(values, rows, dim, ids_text, npy, ids)
    }

    fn from_parts(values: Vec<f32>, rows: usize, dim: usize, text: &str, npy: &Path, ids: &Path) -> Result<Self> {
        let ids_v: Vec<String> = text.lines().map(str::to_string).collect();
        if ids_v.len() != rows {
            return Err(Error::Other(format!(
                "{}: {} ids but {} has {} rows",
                ids.display(),
                ids_v.len(),
                npy.display(),
                rows
            )));
        }
        Ok(Self { ids: ids_v, values, dim })
    }

    /// Exact top-`k` by inner product for one query vector, on the host (no device, no size
    /// limit): best first, ties broken by docid as in [`ExactSearch`].
    pub fn search_one(&self, query: &[f32], k: usize) -> Result<Vec<(f32, String)>> {
        if query.len() != self.dim {
            return Err(Error::Other(format!(
                "query vector has {} dimensions, the index has {}",
                query.len(),
                self.dim
            )));
        }
        let mut top = TopK::new(k);
        const BLOCK: usize = 4096;
        let mut scores = Vec::with_capacity(BLOCK);
        for (b, ids) in self.ids.chunks(BLOCK).enumerate() {
            scores.clear();
            for i in 0..ids.len() {
                let row = self.row(b * BLOCK + i);
                scores.push(row.iter().zip(query).map(|(a, q)| a * q).sum::<f32>());
            }
            top.offer(&scores, ids);
        }
        Ok(top.into_sorted())
    }
}

/// The `(embeddings, ids)` file pairs of an `llmql encode` output folder, in shard order:
/// `embeddings.npy` + `ids.txt`, and/or `embeddings.I.npy` + `ids.I.txt` for I = 0, 1, ...
pub fn find_shards(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut shards: Vec<(Option<usize>, PathBuf, PathBuf)> = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        let Some(mid) = name.strip_prefix("embeddings").and_then(|s| s.strip_suffix(".npy")) else {
            continue;
        };
        let (idx, ids) = if mid.is_empty() {
            (None, dir.join("ids.txt"))
        } else if let Some(i) = mid.strip_prefix('.').and_then(|s| s.parse::<usize>().ok()) {
            (Some(i), dir.join(format!("ids.{i}.txt")))
        } else {
            continue;
        };
        if !ids.exists() {
            return Err(Error::Other(format!("{}: missing {} for {name}", dir.display(), ids.display())));
        }
        shards.push((idx, e.path(), ids));
    }
    if shards.is_empty() {
        return Err(Error::Other(format!(
            "{}: no embeddings.npy or embeddings.I.npy (run `llmql encode` first)",
            dir.display()
        )));
    }
    shards.sort_by_key(|(i, _, _)| i.map(|x| x + 1).unwrap_or(0));
    Ok(shards.into_iter().map(|(_, a, b)| (a, b)).collect())
}

/// Loads every shard of a folder into one matrix (for query sets, which are small).
pub fn load_all(dir: &Path) -> Result<Embeddings> {
    let mut all: Option<Embeddings> = None;
    for (npy, ids) in find_shards(dir)? {
        let e = Embeddings::load(&npy, &ids)?;
        match &mut all {
            None => all = Some(e),
            Some(a) => {
                if a.dim != e.dim {
                    return Err(Error::Other(format!("{}: dimension {} differs from {}", npy.display(), e.dim, a.dim)));
                }
                a.ids.extend(e.ids);
                a.values.extend(e.values);
            }
        }
    }
    Ok(all.expect("at least one shard"))
}

/// `(score desc, docid asc)`: the order of a run.
fn better(a: &(f32, String), b: &(f32, String)) -> Ordering {
    b.0.partial_cmp(&a.0).unwrap_or(Ordering::Equal).then_with(|| a.1.cmp(&b.1))
}

/// The running top-K of one query.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    items: Vec<(f32, String)>,
    /// Scores below this cannot enter (the K-th best so far, once K are held).
    floor: f32,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self { k, items: Vec::new(), floor: f32::NEG_INFINITY }
    }

    fn prune(&mut self) {
        if self.items.len() > self.k {
            self.items.select_nth_unstable_by(self.k - 1, better);
            self.items.truncate(self.k);
            self.floor = self.items.iter().map(|x| x.0).fold(f32::INFINITY, f32::min);
        }
    }

    /// Offers a block of scores for documents `ids`.
    pub fn offer(&mut self, scores: &[f32], ids: &[String]) {
        if self.k == 0 {
            return;
        }
        for (s, id) in scores.iter().zip(ids) {
            // Ties with the floor still enter: the docid decides.
            if *s < self.floor || s.is_nan() {
                continue;
            }
            self.items.push((*s, id.clone()));
            if self.items.len() >= 2 * self.k + 64 {
                self.prune();
            }
        }
    }

    /// The final list, best first.
    pub fn into_sorted(mut self) -> Vec<(f32, String)> {
        self.prune();
        self.items.sort_by(better);
        self.items
    }
}

/// Exact search state: queries on the device, one top-K per query.
pub struct ExactSearch<B: Backend> {
    query_ids: Vec<String>,
    /// Query batches `[qb, dim]` already on the device.
    query_blocks: Vec<Tensor<B, 2>>,
    tops: Vec<TopK>,
    dim: usize,
    /// Corpus rows scored per matmul.
    pub block_rows: usize,
    device: B::Device,
}

impl<B: Backend> ExactSearch<B> {
    pub fn new(queries: &Embeddings, depth: usize, device: &B::Device) -> Self {
        let qb = 256;
        let query_blocks = (0..queries.rows())
            .step_by(qb)
            .map(|start| {
                let end = (start + qb).min(queries.rows());
                let v = queries.values[start * queries.dim..end * queries.dim].to_vec();
                Tensor::<B, 2>::from_data(TensorData::new(v, [end - start, queries.dim]), device)
            })
            .collect();
        Self {
            query_ids: queries.ids.clone(),
            query_blocks,
            tops: vec![TopK::new(depth); queries.rows()],
            dim: queries.dim,
            block_rows: 16384,
            device: device.clone(),
        }
    }

    /// Scores every query against a shard of passages and updates the top-Ks.
    pub fn add(&mut self, corpus: &Embeddings) -> Result<()> {
        if corpus.dim != self.dim {
            return Err(Error::Other(format!(
                "corpus dimension {} differs from query dimension {}",
                corpus.dim, self.dim
            )));
        }
        for start in (0..corpus.rows()).step_by(self.block_rows.max(1)) {
            let end = (start + self.block_rows).min(corpus.rows());
            let n = end - start;
            let block = Tensor::<B, 2>::from_data(
                TensorData::new(corpus.values[start * self.dim..end * self.dim].to_vec(), [n, self.dim]),
                &self.device,
            )
            .transpose();
            let ids = &corpus.ids[start..end];
            let mut q0 = 0;
            for qblock in &self.query_blocks {
                let qn = qblock.dims()[0];
                let scores: Vec<f32> =
                    qblock.clone().matmul(block.clone()).into_data().convert::<f32>().to_vec().expect("f32 scores");
                self.tops[q0..q0 + qn]
                    .par_iter_mut()
                    .zip(scores.par_chunks(n))
                    .for_each(|(top, row)| top.offer(row, ids));
                q0 += qn;
            }
        }
        Ok(())
    }

    /// The run: each query's top-K, best first.
    pub fn finish(self) -> Run {
        self.query_ids
            .into_iter()
            .zip(self.tops)
            .map(|(q, top)| {
                let entries =
                    top.into_sorted().into_iter().map(|(s, d)| RunEntry { docid: d, score: s as f64 }).collect();
                (q, entries)
            })
            .collect()
    }
}

/// Searches every shard of `corpus_dir` for every query (library form of `llmql search`).
/// `on_shard(done_rows)` is called after each shard.
pub fn search_dirs<B: Backend>(
    queries: &Embeddings,
    corpus_dir: &Path,
    depth: usize,
    device: &B::Device,
    mut on_shard: impl FnMut(usize),
) -> Result<Run> {
    let mut s = ExactSearch::<B>::new(queries, depth, device);
    for (npy, ids) in find_shards(corpus_dir)? {
        let shard = Embeddings::load(&npy, &ids)?;
        s.add(&shard)?;
        on_shard(shard.rows());
    }
    Ok(s.finish())
}

/// Searches an in-memory corpus (the browser's index).
pub fn search_in_memory<B: Backend>(
    queries: &Embeddings,
    corpus: &Embeddings,
    depth: usize,
    device: &B::Device,
) -> Result<Run> {
    let mut s = ExactSearch::<B>::new(queries, depth, device);
    s.add(corpus)?;
    Ok(s.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_is_exact_with_ties_by_docid() {
        let mut t = TopK::new(3);
        let ids: Vec<String> = ["e", "d", "c", "b", "a", "f"].iter().map(|s| s.to_string()).collect();
        t.offer(&[0.5, 0.9, 0.5, 0.1, 0.5, 0.9], &ids);
        let got = t.into_sorted();
        let names: Vec<&str> = got.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(names, vec!["d", "f", "a"]);
    }

    #[test]
    fn topk_matches_full_sort_on_random_blocks() {
        let mut state = 12345u64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % 50) as f32 / 10.0
        };
        let mut t = TopK::new(20);
        let mut all = Vec::new();
        for b in 0..10 {
            let ids: Vec<String> = (0..100).map(|i| format!("d{:04}", b * 100 + i)).collect();
            let scores: Vec<f32> = (0..100).map(|_| rnd()).collect();
            all.extend(scores.iter().cloned().zip(ids.iter().cloned()));
            t.offer(&scores, &ids);
        }
        all.sort_by(better);
        all.truncate(20);
        assert_eq!(t.into_sorted(), all);
    }
}
