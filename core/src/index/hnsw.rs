//! The approximate kind of index: a Hierarchical Navigable Small World graph (Malkov & Yashunin,
//! 2018) from the `hnsw_rs` crate, over unit vectors with distance `1 - <a, b>` (so the nearest
//! neighbours are the highest inner products, as in exact search). The graph is built with
//! `M` links per node (`2M` on the bottom layer) and a candidate list of `ef_construction`;
//! a search keeps `ef` candidates (`ef >= k`; larger is slower and closer to exact).
//!
//! The graph and the vectors are stored by `hnsw_rs`'s own dump (`NAME.hnsw.graph`,
//! `NAME.hnsw.data`); their sizes are recorded in `index.json` and checked before loading, since
//! `hnsw_rs` asserts (panics) on some malformed files; a panic left is turned into an error.
use super::dot::dot;
use crate::error::{Error, Result};
use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `1 - <a, b>`, floored at 0 (unit vectors: 0 for identical ones, rounding can dip below).
#[derive(Debug, Default, Clone, Copy)]
pub struct InnerProductDistance;

impl Distance<f32> for InnerProductDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// How the graph is built and searched by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node and layer (`2M` on the bottom layer).
    pub m: usize,
    /// Candidates kept while linking a new node.
    pub ef_construction: usize,
    /// Candidates kept by a search unless the caller gives another `ef` (at least `k` is used).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self { m: 16, ef_construction: 100, ef_search: 64 }
    }
}

impl HnswParams {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(2..=255).contains(&self.m) {
            return Err(format!("HNSW M must be in 2..=255, got {}", self.m));
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return Err("HNSW ef_construction and ef_search must be at least 1".into());
        }
        Ok(())
    }
}

/// Layers at most (`hnsw_rs`'s own limit).
const MAX_LAYERS: usize = 16;
/// Rows inserted per parallel step (between progress reports).
const INSERT_CHUNK: usize = 10_000;

/// A built or loaded graph; rows are numbered as in the index's `ids.txt`.
pub struct HnswIndex {
    graph: Hnsw<'static, f32, InnerProductDistance>,
    pub params: HnswParams,
}

impl HnswIndex {
    /// Builds the graph over `count` rows of `values` (`[count, dim]`, unit vectors), inserting in
    /// parallel on rayon's pool. `on_progress(done, total)` after each chunk.
    pub fn build(
        values: &[f32],
        dim: usize,
        params: HnswParams,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        params.validate().map_err(Error::Other)?;
        let count = values.len() / dim.max(1);
        let mut graph = Hnsw::new(params.m, count.max(1), MAX_LAYERS, params.ef_construction, InnerProductDistance);
        let rows: Vec<(&[f32], usize)> = values.chunks_exact(dim).enumerate().map(|(i, r)| (r, i)).collect();
        for (c, chunk) in rows.chunks(INSERT_CHUNK).enumerate() {
            graph.parallel_insert_slice(&chunk.to_vec());
            on_progress((c * INSERT_CHUNK + chunk.len()).min(count), count);
        }
        graph.set_searching_mode(true);
        Ok(Self { graph, params })
    }

    /// Writes `NAME.hnsw.graph` and `NAME.hnsw.data` into `dir`; returns the base name used.
    pub fn dump(&self, dir: &Path, name: &str) -> Result<String> {
        self.graph
            .file_dump(dir, name)
            .map_err(|e| Error::Other(format!("{}: writing the HNSW graph: {e}", dir.display())))
    }

    /// The two files of a dump named `name`.
    pub fn files(dir: &Path, name: &str) -> [std::path::PathBuf; 2] {
        [dir.join(format!("{name}.hnsw.graph")), dir.join(format!("{name}.hnsw.data"))]
    }

    /// Loads a dump. The loader is kept for the life of the process (`hnsw_rs` ties the graph's
    /// lifetime to it; it holds only the folder name and options once loading is done).
    pub fn load(dir: &Path, name: &str, params: HnswParams) -> Result<Self> {
        let loaded = std::panic::catch_unwind(|| {
            let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, name)));
            io.load_hnsw::<f32, InnerProductDistance>()
        });
        let what = || Self::files(dir, name)[0].display().to_string();
        let mut graph = match loaded {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return Err(Error::Other(format!("{}: cannot load the HNSW graph: {e}", what()))),
            Err(_) => return Err(Error::Other(format!("{}: malformed HNSW graph (the loader failed)", what()))),
        };
        graph.set_searching_mode(true);
        Ok(Self { graph, params })
    }

    /// Rows in the graph.
    pub fn len(&self) -> usize {
        self.graph.get_nb_point()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The approximate top `k` rows for `query`: `(row, inner product)`, best first. `ef` defaults
    /// to the build's `ef_search`; at least `k` is used.
    pub fn search(&self, query: &[f32], k: usize, ef: Option<usize>) -> Vec<(usize, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let ef = ef.unwrap_or(self.params.ef_search).max(k);
        self.graph.search(query, k, ef).into_iter().map(|n| (n.d_id, 1.0 - n.distance)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Clustered unit vectors (centres plus noise), the shape of real embeddings.
    fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..20).map(|_| (0..dim).map(|_| rng.random::<f32>() - 0.5).collect()).collect();
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[i % centres.len()];
            let row: Vec<f32> = c.iter().map(|x| x + 0.4 * (rng.random::<f32>() - 0.5)).collect();
            let norm = dot(&row, &row).sqrt();
            out.extend(row.iter().map(|v| v / norm));
        }
        out
    }

    #[test]
    fn recall_against_exact_and_dump_round_trip() {
        let (n, dim) = (3000, 32);
        let values = clustered(n, dim, 1);
        let g = HnswIndex::build(&values, dim, HnswParams::default(), &mut |_, _| {}).unwrap();
        assert_eq!(g.len(), n);
        let queries = clustered(50, dim, 2);
        let exact = |q: &[f32]| {
            let mut s: Vec<(usize, f32)> = values.chunks_exact(dim).map(|r| dot(r, q)).enumerate().collect();
            s.sort_by(|a, b| b.1.total_cmp(&a.1));
            s.into_iter().take(10).map(|x| x.0).collect::<Vec<_>>()
        };
        let recall = |g: &HnswIndex| {
            let mut hit = 0;
            for q in queries.chunks_exact(dim) {
                let want = exact(q);
                let got = g.search(q, 10, Some(64));
                assert_eq!(got.len(), 10);
                hit += got.iter().filter(|(r, _)| want.contains(r)).count();
            }
            hit as f64 / (10 * queries.len() / dim) as f64
        };
        let r = recall(&g);
        assert!(r >= 0.9, "recall@10 {r}");
        let d = tempfile::tempdir().unwrap();
        let name = g.dump(d.path(), "g").unwrap();
        let back = HnswIndex::load(d.path(), &name, g.params).unwrap();
        assert_eq!(back.len(), n);
        let q = &queries[..dim];
        assert_eq!(back.search(q, 10, Some(64)), g.search(q, 10, Some(64)));
        assert_eq!(recall(&back), r);
    }
}
