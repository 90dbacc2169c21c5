//! The approximate kind of index for large corpora: an inverted file (IVF) over k-means cells,
//! with int8 codes scanned and the best candidates re-scored exactly.
//!
//! What: the rows are split into `lists` cells by spherical k-means (unit centroids, inner product;
//! Lloyd iterations on a seeded sample, then every row assigned to its best centroid). A search
//! scores the query against the centroids, scans the rows of the `nprobe` best cells with an
//! approximate score (each row stored as int8 codes, one scale per dimension: `x_j ~ scale_j *
//! code_j`), keeps the `rescore` best candidates and re-scores them with the exact f32 vectors
//! (`embeddings.npy`, memory-mapped by the caller), so the scores returned are exact inner products
//! and the int8 rounding can only change which candidates are looked at, not their order.
//!
//! Why: on embedding-shaped data the right answers of a query sit in a few cells, which a graph
//! index reaches only through many hops when clusters are dense in hundreds of dimensions
//! (`llmql bench index`: hnsw_rs M 16 reached recall@10 0.53 at 1M x 576); a cell scan is a
//! sequential pass over a few thousand contiguous int8 rows, cheap on one core, and the index costs
//! `dim` bytes plus 4 per row in memory (the f32 vectors stay on disk, read for the re-scored rows).
//!
//! How it matches the reference: this is faiss's `IndexIVFScalarQuantizer` (`QT_8bit`, inner
//! product, spherical k-means) followed by an exact re-ranking of the shortlist like faiss's
//! `IndexRefine`; `llmql bench index` and `bench/faiss_index.py` measure both on the same vectors.
//!
//! File `ivf.bin` (little-endian): magic `LLMQLIVF`, u32 version 1, u32 dim, u64 lists, u64 count,
//! then f32 scales `[dim]`, f32 centroids `[lists, dim]`, u64 offsets `[lists + 1]` (cell `l` holds
//! positions `offsets[l]..offsets[l + 1]`), u32 rows `[count]` (the row of each position, as in
//! `ids.txt`), i8 codes `[count, dim]` in position order. Its size is checked before it is read.
use super::dot::{dot, dot_i8, matmul_transposed};
use crate::error::{Error, Result};
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"LLMQLIVF";
const VERSION: u32 = 1;
const HEADER_BYTES: u64 = 8 + 4 + 4 + 8 + 8;
/// Lloyd iterations of the k-means.
pub const ITERATIONS: usize = 10;
/// Training rows per cell (faiss warns below 39) and in all.
const TRAIN_PER_LIST: usize = 64;
const MAX_TRAIN: usize = 1 << 18;
/// Rows the default `nprobe` scans at least (on average).
pub const MIN_SCANNED: usize = 8192;
/// Rows assigned per matrix product.
const ASSIGN_BLOCK: usize = 8192;

/// How the index is built and searched by default; 0 means "chosen from the size" (see
/// [`IvfParams::resolve`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IvfParams {
    /// k-means cells.
    pub lists: usize,
    /// Cells scanned per search unless the caller gives another `nprobe`.
    pub nprobe: usize,
    /// Candidates (best by int8 score) re-scored with the f32 vectors; at least `k` is used.
    pub rescore: usize,
}

impl IvfParams {
    /// The values used for `count` rows: `lists` defaults to `2 * sqrt(count)` (cells of ~sqrt(count)/2
    /// rows); `nprobe` to 1/64 of the cells, or more where that scans fewer than [`MIN_SCANNED`] rows
    /// (small indexes, where scanning is cheap and clusters overlap more); `rescore` to 200.
    pub fn resolve(self, count: usize) -> Self {
        let lists = match self.lists {
            0 => ((2.0 * (count as f64).sqrt()).round() as usize).max(1),
            l => l,
        }
        .min(count.max(1));
        let nprobe = match self.nprobe {
            0 => (lists / 64).max((MIN_SCANNED * lists).div_ceil(count.max(1))),
            p => p,
        }
        .min(lists);
        let rescore = match self.rescore {
            0 => 200,
            r => r,
        };
        Self { lists, nprobe, rescore }
    }
}

/// A built or loaded index; rows are numbered as in the index's `ids.txt`.
#[derive(Clone)]
pub struct IvfIndex {
    dim: usize,
    scales: Vec<f32>,
    centroids: Vec<f32>,
    offsets: Vec<u64>,
    rows: Vec<u32>,
    codes: Vec<i8>,
    /// Resolved (no zeros).
    pub params: IvfParams,
}

/// The best centroid of each row of `values` (`[n, dim]`), by inner product.
fn assign(values: &[f32], centroids: &[f32], dim: usize) -> Vec<u32> {
    let lists = centroids.len() / dim;
    let mut out = Vec::with_capacity(values.len() / dim);
    for block in values.chunks(ASSIGN_BLOCK * dim) {
        let scores = matmul_transposed(block, centroids, dim);
        let best: Vec<u32> = scores
            .par_chunks(lists)
            .map(|s| {
                let mut b = 0;
                for (j, v) in s.iter().enumerate() {
                    if *v > s[b] {
                        b = j;
                    }
                }
                b as u32
            })
            .collect();
        out.extend(best);
    }
    out
}

fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Spherical k-means on `train` (`[n, dim]`): `lists` unit centroids.
fn kmeans(train: &[f32], dim: usize, lists: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
    use rand::Rng;
    let n = train.len() / dim;
    let first = rand::seq::index::sample(rng, n, lists);
    let mut centroids: Vec<f32> = first.iter().flat_map(|i| train[i * dim..(i + 1) * dim].to_vec()).collect();
    for _ in 0..ITERATIONS {
        let a = assign(train, &centroids, dim);
        let (sums, counts) = a
            .par_iter()
            .enumerate()
            .fold(
                || (vec![0f32; lists * dim], vec![0usize; lists]),
                |(mut s, mut c), (i, &l)| {
                    let l = l as usize;
                    c[l] += 1;
                    for (x, y) in s[l * dim..(l + 1) * dim].iter_mut().zip(&train[i * dim..(i + 1) * dim]) {
                        *x += y;
                    }
                    (s, c)
                },
            )
            .reduce(
                || (vec![0f32; lists * dim], vec![0usize; lists]),
                |(mut s, mut c), (s2, c2)| {
                    s.iter_mut().zip(&s2).for_each(|(x, y)| *x += y);
                    c.iter_mut().zip(&c2).for_each(|(x, y)| *x += y);
                    (s, c)
                },
            );
        centroids = sums;
        for (l, c) in centroids.chunks_exact_mut(dim).enumerate() {
            if counts[l] == 0 {
                // An empty cell restarts at a random training row.
                let i = rng.random_range(0..n);
                c.copy_from_slice(&train[i * dim..(i + 1) * dim]);
            }
            normalize(c);
        }
    }
    centroids
}

impl IvfIndex {
    /// Builds the index over the rows of `values` (`[count, dim]`, unit vectors); `seed` picks the
    /// k-means sample and start. `on_progress(done, total)` reports rows assigned.
    pub fn build(
        values: &[f32],
        dim: usize,
        params: IvfParams,
        seed: u64,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        if dim == 0 || values.is_empty() || !values.len().is_multiple_of(dim) {
            return Err(Error::Other("an IVF index needs at least one row of at least one dimension".into()));
        }
        let count = values.len() / dim;
        if count > u32::MAX as usize {
            return Err(Error::Other(format!("an IVF index holds at most {} rows, got {count}", u32::MAX)));
        }
        let params = params.resolve(count);
        let lists = params.lists;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let train_n = count.min((lists * TRAIN_PER_LIST).clamp(lists, MAX_TRAIN.max(lists)));
        let mut picked = rand::seq::index::sample(&mut rng, count, train_n).into_vec();
        picked.sort_unstable();
        let train: Vec<f32> = picked.iter().flat_map(|&i| values[i * dim..(i + 1) * dim].iter().copied()).collect();
        let centroids = kmeans(&train, dim, lists, &mut rng);
        drop(train);

        let mut cell = Vec::with_capacity(count);
        for (b, block) in values.chunks(ASSIGN_BLOCK * 8 * dim).enumerate() {
            cell.extend(assign(block, &centroids, dim));
            on_progress(((b + 1) * ASSIGN_BLOCK * 8).min(count), count);
        }
        let mut offsets = vec![0u64; lists + 1];
        for &c in &cell {
            offsets[c as usize + 1] += 1;
        }
        for l in 0..lists {
            offsets[l + 1] += offsets[l];
        }
        let mut next: Vec<u64> = offsets[..lists].to_vec();
        let mut rows = vec![0u32; count];
        for (r, &c) in cell.iter().enumerate() {
            rows[next[c as usize] as usize] = r as u32;
            next[c as usize] += 1;
        }

        let mut scales = values
            .par_chunks(dim * 4096)
            .fold(
                || vec![0f32; dim],
                |mut m, block| {
                    for row in block.chunks_exact(dim) {
                        m.iter_mut().zip(row).for_each(|(m, x)| *m = m.max(x.abs()));
                    }
                    m
                },
            )
            .reduce(|| vec![0f32; dim], |a, b| a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect());
        scales.iter_mut().for_each(|s| *s = if *s > 0.0 { *s / 127.0 } else { 1.0 });
        let mut codes = vec![0i8; count * dim];
        codes.par_chunks_mut(dim).zip(rows.par_iter()).for_each(|(code, &r)| {
            let row = &values[r as usize * dim..(r as usize + 1) * dim];
            for ((c, x), s) in code.iter_mut().zip(row).zip(&scales) {
                *c = (x / s).round().clamp(-127.0, 127.0) as i8;
            }
        });
        Ok(Self { dim, scales, centroids, offsets, rows, codes, params })
    }

    /// Rows in the index.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes held in memory (codes, row numbers, centroids, offsets, scales).
    pub fn memory_bytes(&self) -> usize {
        self.codes.len() + 4 * self.rows.len() + 4 * (self.centroids.len() + self.scales.len()) + 8 * self.offsets.len()
    }

    /// The approximate top `k` rows for `query`: `(row, exact inner product)`, best first (ties by
    /// row). `nprobe` defaults to the build's; `exact(row)` is the f32 score of a candidate.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        nprobe: Option<usize>,
        exact: &dyn Fn(usize) -> f32,
    ) -> Vec<(usize, f32)> {
        let lists = self.offsets.len() - 1;
        if k == 0 || self.rows.is_empty() {
            return Vec::new();
        }
        let nprobe = nprobe.unwrap_or(self.params.nprobe).clamp(1, lists);
        let mut cells: Vec<(f32, usize)> =
            self.centroids.chunks_exact(self.dim).map(|c| dot(c, query)).zip(0..).collect();
        if nprobe < lists {
            cells.select_nth_unstable_by(nprobe - 1, |a, b| b.0.total_cmp(&a.0));
            cells.truncate(nprobe);
        }
        let q: Vec<f32> = query.iter().zip(&self.scales).map(|(x, s)| x * s).collect();
        let mut cand: Vec<(f32, u32)> = Vec::new();
        for &(_, l) in &cells {
            let (a, b) = (self.offsets[l] as usize, self.offsets[l + 1] as usize);
            let codes = &self.codes[a * self.dim..b * self.dim];
            cand.extend(codes.chunks_exact(self.dim).zip(&self.rows[a..b]).map(|(c, &r)| (dot_i8(&q, c), r)));
        }
        let keep = self.params.rescore.max(k);
        if cand.len() > keep {
            cand.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
            cand.truncate(keep);
        }
        let mut out: Vec<(usize, f32)> = cand.into_iter().map(|(_, r)| (r as usize, exact(r as usize))).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    fn expected_bytes(dim: u64, lists: u64, count: u64) -> Option<u64> {
        let f = |a: u64, b: u64| a.checked_mul(b);
        [f(dim, 4)?, f(f(lists, dim)?, 4)?, f(lists.checked_add(1)?, 8)?, f(count, 4)?, f(count, dim)?]
            .into_iter()
            .try_fold(HEADER_BYTES, |a, b| a.checked_add(b))
    }

    /// Writes `ivf.bin`; returns its size in bytes.
    pub fn write(&self, path: &Path) -> Result<u64> {
        let io = |e| Error::io(path, e);
        let mut w = BufWriter::new(std::fs::File::create(path).map_err(io)?);
        let lists = self.offsets.len() as u64 - 1;
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        w.write_all(&(self.dim as u32).to_le_bytes()).map_err(io)?;
        w.write_all(&lists.to_le_bytes()).map_err(io)?;
        w.write_all(&(self.rows.len() as u64).to_le_bytes()).map_err(io)?;
        for v in self.scales.iter().chain(&self.centroids) {
            w.write_all(&v.to_le_bytes()).map_err(io)?;
        }
        for v in &self.offsets {
            w.write_all(&v.to_le_bytes()).map_err(io)?;
        }
        for v in &self.rows {
            w.write_all(&v.to_le_bytes()).map_err(io)?;
        }
        for chunk in self.codes.chunks(1 << 20) {
            let bytes: Vec<u8> = chunk.iter().map(|&c| c as u8).collect();
            w.write_all(&bytes).map_err(io)?;
        }
        w.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
        Ok(std::fs::metadata(path).map_err(io)?.len())
    }

    /// Reads `ivf.bin` of an index of `count` rows of `dim` dimensions, checking its size, header
    /// and structure (every row in exactly one cell) before use.
    pub fn read(path: &Path, dim: usize, count: usize, params: IvfParams) -> Result<Self> {
        let bad = |m: String| Error::config(path, m);
        let io = |e| Error::io(path, e);
        let f = std::fs::File::open(path).map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        let mut r = BufReader::new(f);
        let mut header = [0u8; HEADER_BYTES as usize];
        if size < HEADER_BYTES {
            return Err(bad(format!("{size} bytes: too short for an IVF index (truncated?)")));
        }
        r.read_exact(&mut header).map_err(io)?;
        if &header[..8] != MAGIC {
            return Err(bad("not an llmql IVF index file (bad magic)".into()));
        }
        let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap());
        let (version, file_dim, lists, file_count) = (u32_at(8), u32_at(12) as u64, u64_at(16), u64_at(24));
        if version != VERSION {
            return Err(bad(format!("IVF file version {version}, this llmql reads {VERSION}")));
        }
        if file_dim != dim as u64 || file_count != count as u64 {
            return Err(bad(format!(
                "holds {file_count} rows of dimension {file_dim}, index.json says {count} of {dim}: the file is from another index"
            )));
        }
        if lists == 0 || lists > count as u64 {
            return Err(bad(format!("{lists} cells for {count} rows")));
        }
        if params.lists != 0 && params.lists as u64 != lists {
            return Err(bad(format!(
                "holds {lists} cells, index.json says {}: the file is from another index",
                params.lists
            )));
        }
        let want = Self::expected_bytes(file_dim, lists, file_count).ok_or_else(|| bad("sizes overflow".into()))?;
        if size != want {
            return Err(bad(format!("{size} bytes, expected {want}: the file is truncated or damaged")));
        }
        let lists = lists as usize;
        let mut bytes = |n: usize| -> Result<Vec<u8>> {
            let mut b = vec![0u8; n];
            r.read_exact(&mut b).map_err(io)?;
            Ok(b)
        };
        let f32s =
            |b: Vec<u8>| -> Vec<f32> { b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect() };
        let scales = f32s(bytes(4 * dim)?);
        let centroids = f32s(bytes(4 * lists * dim)?);
        let offsets: Vec<u64> =
            bytes(8 * (lists + 1))?.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        let rows: Vec<u32> =
            bytes(4 * count)?.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
        let codes: Vec<i8> = bytes(count * dim)?.into_iter().map(|b| b as i8).collect();
        if !scales.iter().chain(&centroids).all(|v| v.is_finite()) {
            return Err(bad("non-finite scale or centroid".into()));
        }
        if offsets[0] != 0 || offsets[lists] != count as u64 || offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad("cell offsets are not an increasing partition of the rows".into()));
        }
        let mut seen = vec![false; count];
        for &row in &rows {
            match seen.get_mut(row as usize) {
                Some(s) if !*s => *s = true,
                _ => return Err(bad(format!("row {row} is out of range or in two cells"))),
            }
        }
        Ok(Self { dim, scales, centroids, offsets, rows, codes, params: params.resolve(count) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Clustered unit vectors: `centres` random centres, each row a centre plus noise of norm 1.
    fn clustered(n: usize, dim: usize, centres: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut g = || rng.random::<f32>() - 0.5;
        let c: Vec<f32> = (0..centres * dim).map(|_| g()).collect();
        let c: Vec<f32> = c
            .chunks_exact(dim)
            .flat_map(|r| {
                let mut r = r.to_vec();
                normalize(&mut r);
                r
            })
            .collect();
        let noise = (12.0 / dim as f32).sqrt();
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let mut row: Vec<f32> =
                c[(i % centres) * dim..(i % centres + 1) * dim].iter().map(|x| x + noise * g()).collect();
            normalize(&mut row);
            out.extend(row);
        }
        out
    }

    fn exact(values: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<usize> {
        let mut s: Vec<(usize, f32)> = values.chunks_exact(dim).map(|r| dot(r, q)).enumerate().collect();
        s.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        s.into_iter().take(k).map(|x| x.0).collect()
    }

    #[test]
    fn recall_at_the_defaults_and_file_round_trip() {
        let (n, dim) = (20_000, 48);
        let values = clustered(n, dim, 200, 1);
        let queries = clustered(100, dim, 200, 2);
        let ivf = IvfIndex::build(&values, dim, IvfParams::default(), 0, &mut |_, _| {}).unwrap();
        assert_eq!(ivf.len(), n);
        assert_eq!(ivf.params, IvfParams::default().resolve(n));
        let recall = |ivf: &IvfIndex, nprobe: Option<usize>| {
            let mut hit = 0;
            for q in queries.chunks_exact(dim) {
                let want = exact(&values, dim, q, 10);
                let got = ivf.search(q, 10, nprobe, &|r| dot(&values[r * dim..(r + 1) * dim], q));
                assert_eq!(got.len(), 10);
                assert!(got.windows(2).all(|w| w[0].1 >= w[1].1));
                for (r, s) in &got {
                    assert_eq!(*s, dot(&values[r * dim..(r + 1) * dim], q), "scores are exact");
                }
                hit += got.iter().filter(|(r, _)| want.contains(r)).count();
            }
            hit as f64 / (10 * queries.len() / dim) as f64
        };
        let r = recall(&ivf, None);
        assert!(r >= 0.95, "recall@10 at the defaults {r}");
        // Every cell scanned and every candidate re-scored: exact search.
        let all = IvfIndex { params: IvfParams { rescore: n, ..ivf.params }, ..ivf.clone() };
        assert_eq!(recall(&all, Some(ivf.params.lists)), 1.0);

        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ivf.bin");
        let bytes = ivf.write(&p).unwrap();
        assert_eq!(bytes, std::fs::metadata(&p).unwrap().len());
        let back = IvfIndex::read(&p, dim, n, IvfParams::default()).unwrap();
        assert_eq!(back.rows, ivf.rows);
        assert_eq!(back.codes, ivf.codes);
        assert_eq!(recall(&back, None), r);

        // Refused with the reason: another index's shape, a truncated file, a damaged partition.
        let e = IvfIndex::read(&p, dim, n + 1, IvfParams::default()).err().unwrap().to_string();
        assert!(e.contains("from another index"), "{e}");
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 1]).unwrap();
        let e = IvfIndex::read(&p, dim, n, IvfParams::default()).err().unwrap().to_string();
        assert!(e.contains("truncated or damaged"), "{e}");
        let mut bad = full.clone();
        let rows_at = (HEADER_BYTES as usize) + 4 * dim + 4 * ivf.params.lists * dim + 8 * (ivf.params.lists + 1);
        bad.copy_within(rows_at + 4..rows_at + 8, rows_at);
        std::fs::write(&p, &bad).unwrap();
        let e = IvfIndex::read(&p, dim, n, IvfParams::default()).err().unwrap().to_string();
        assert!(e.contains("in two cells"), "{e}");
    }
}
