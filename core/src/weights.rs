//! Reading Hugging Face safetensors checkpoints (single file or sharded with an index) into Burn
//! tensors of a chosen dtype, with one error that lists every missing, unexpected or mis-shaped tensor.
use crate::error::{Error, Result};
use burn::tensor::{backend::Backend, DType, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::tensor::{Dtype as StDtype, Metadata};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A shard's bytes: memory-mapped from a file, or owned (the browser hands us bytes it fetched).
enum Bytes {
    Mmap(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mmap(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

struct Shard {
    path: PathBuf,
    mmap: Bytes,
    header_len: usize,
    metadata: Metadata,
}

/// Where each tensor of a checkpoint lives. Tensors are read lazily, one at a time, straight from
/// memory-mapped files, so loading never holds more than one converted tensor besides the model.
pub struct WeightFiles {
    /// Folder or file the weights were found in (for messages).
    pub origin: PathBuf,
    shards: Vec<Shard>,
    /// A GGUF file instead of safetensors shards (then `index` holds HF names only).
    gguf: Option<(crate::gguf::GgufFile, HashMap<String, crate::gguf::GgufTensor>)>,
    index: HashMap<String, usize>,
    taken: Mutex<BTreeSet<String>>,
    problems: Mutex<Vec<String>>,
}

/// A tensor's raw element type on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDtype {
    F32,
    F16,
    BF16,
}

impl WeightFiles {
    /// Opens `model.safetensors`, or every shard named by `model.safetensors.index.json`, in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        if let Some(single) = crate::paths::model_file_opt(dir, "model.safetensors")? {
            Self::open_files(dir, &[single])
        } else if let Some(index) = crate::paths::model_file_opt(dir, "model.safetensors.index.json")? {
            let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
            let paths = index_shards(&text, &index)?
                .iter()
                .map(|f| crate::paths::model_file(dir, f))
                .collect::<Result<Vec<_>>>()?;
            Self::open_files(dir, &paths)
        } else {
            Err(Error::Weights {
                path: dir.into(),
                message: "no model.safetensors or model.safetensors.index.json in this folder".into(),
            })
        }
    }

    /// Opens the given safetensors files as one checkpoint.
    pub fn open_files(origin: &Path, paths: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::new();
        for path in paths {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the file is opened read-only; like every mmap-based loader we assume it is not
            // truncated while we read it.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            shards.push((path.clone(), Bytes::Mmap(mmap)));
        }
        Self::from_shards(origin, shards)
    }

    /// Serves safetensors files held in memory, as `(name, bytes)` (no file system: the browser).
    pub fn from_bytes(origin: &Path, files: Vec<(String, Vec<u8>)>) -> Result<Self> {
        Self::from_shards(
            origin,
            files.into_iter().map(|(name, bytes)| (PathBuf::from(name), Bytes::Owned(bytes))).collect(),
        )
    }

    /// Indexes the tensors of each shard (its header is checked here).
    fn from_shards(origin: &Path, files: Vec<(PathBuf, Bytes)>) -> Result<Self> {
        let mut shards = Vec::new();
        let mut index = HashMap::new();
        for (path, bytes) in files {
            let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
                Error::Weights { path: path.clone(), message: format!("not a valid safetensors file: {e}") }
            })?;
            for name in metadata.tensors().keys() {
                index.insert(name.clone(), shards.len());
            }
            shards.push(Shard { path, mmap: bytes, header_len, metadata });
        }
        Ok(WeightFiles {
            origin: origin.into(),
            shards,
            gguf: None,
            index,
            taken: Mutex::new(BTreeSet::new()),
            problems: Mutex::new(Vec::new()),
        })
    }

    /// Serves the tensors of a GGUF file under their HF names (dequantised on read).
    pub fn from_gguf(file: crate::gguf::GgufFile) -> Result<Self> {
        let map = crate::gguf::tensor_map(&file)?;
        Ok(WeightFiles {
            origin: file.path.clone(),
            shards: Vec::new(),
            index: map.keys().map(|k| (k.clone(), 0)).collect(),
            gguf: Some((file, map)),
            taken: Mutex::new(BTreeSet::new()),
            problems: Mutex::new(Vec::new()),
        })
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index.keys().cloned().collect();
        v.sort();
        v
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Shape and dtype of a stored tensor.
    pub fn info(&self, name: &str) -> Option<(Vec<usize>, StoredDtype)> {
        if let Some((file, map)) = &self.gguf {
            let t = file.tensors.get(&map.get(name)?.gguf_name)?;
            let dt = match t.ggml_type {
                crate::gguf::GgmlType::F16 => StoredDtype::F16,
                crate::gguf::GgmlType::BF16 => StoredDtype::BF16,
                _ => StoredDtype::F32, // quantised blocks are dequantised to f32
            };
            return Some((t.torch_shape(), dt));
        }
        let shard = &self.shards[*self.index.get(name)?];
        let info = shard.metadata.info(name)?;
        let dt = match info.dtype {
            StDtype::F32 => StoredDtype::F32,
            StDtype::F16 => StoredDtype::F16,
            StDtype::BF16 => StoredDtype::BF16,
            _ => return None,
        };
        Some((info.shape.clone(), dt))
    }

    /// The dtype most tensors are stored in.
    pub fn stored_dtype(&self) -> Option<StoredDtype> {
        let mut counts: BTreeMap<&'static str, (usize, StoredDtype)> = BTreeMap::new();
        for name in self.index.keys() {
            if let Some((_, d)) = self.info(name) {
                let key = match d {
                    StoredDtype::F32 => "f32",
                    StoredDtype::F16 => "f16",
                    StoredDtype::BF16 => "bf16",
                };
                counts.entry(key).or_insert((0, d)).0 += 1;
            }
        }
        counts.values().max_by_key(|(n, _)| *n).map(|(_, d)| *d)
    }

    /// Reads a tensor's values as f32 (f16/bf16 widened exactly).
    pub fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        if let Some((file, map)) = &self.gguf {
            let t = map.get(name).ok_or_else(|| Error::Weights {
                path: self.origin.clone(),
                message: format!("tensor `{name}` not found"),
            })?;
            return crate::gguf::read_tensor(file, t);
        }
        let &si = self.index.get(name).ok_or_else(|| Error::Weights {
            path: self.origin.clone(),
            message: format!("tensor `{name}` not found"),
        })?;
        let shard = &self.shards[si];
        let info = shard.metadata.info(name).expect("indexed");
        let (start, end) = info.data_offsets;
        let bytes = &shard.mmap[8 + shard.header_len + start..8 + shard.header_len + end];
        let values = match info.dtype {
            StDtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            StDtype::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            StDtype::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => {
                return Err(Error::Weights {
                    path: shard.path.clone(),
                    message: format!("tensor `{name}` has unsupported dtype {other:?} (need F32, F16 or BF16)"),
                })
            }
        };
        Ok((values, info.shape.clone()))
    }

    fn problem(&self, msg: String) {
        self.problems.lock().unwrap().push(msg);
    }

    /// Takes tensor `name`, checking it has `shape`; returns it on `device` in `dtype`.
    /// A missing or mis-shaped tensor is recorded (see [`WeightFiles::finish`]) and a one-element
    /// placeholder returned (never a tensor of the expected size: a hostile config could make that
    /// terabytes), so that one load reports every problem at once; `finish` then fails.
    pub fn take<B: Backend, const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &B::Device,
        dtype: DType,
    ) -> Tensor<B, D> {
        self.taken.lock().unwrap().insert(name.to_string());
        match self.info(name) {
            None if !self.index.contains_key(name) => {
                self.problem(format!("missing: `{name}` (expected shape {shape:?})"));
                Tensor::zeros([1; D], (device, dtype))
            }
            _ => match self.read_f32(name) {
                Ok((values, found)) if found.as_slice() == shape.as_slice() => {
                    Tensor::from_data(TensorData::new(values, shape), (device, dtype))
                }
                Ok((_, found)) => {
                    self.problem(format!("wrong shape: `{name}` expected {shape:?}, found {found:?}"));
                    Tensor::zeros([1; D], (device, dtype))
                }
                Err(e) => {
                    self.problem(format!("unreadable: `{name}`: {e}"));
                    Tensor::zeros([1; D], (device, dtype))
                }
            },
        }
    }

    /// Marks tensors that may be present but are not used (e.g. `lm_head.weight` when only the
    /// encoder is loaded, or old `rotary_emb.inv_freq` buffers).
    pub fn ignore(&self, name: &str) {
        self.taken.lock().unwrap().insert(name.to_string());
    }

    /// Ends a load: one error listing every missing, mis-shaped and unexpected tensor, if any.
    pub fn finish(&self) -> Result<()> {
        let taken = self.taken.lock().unwrap();
        let mut problems = self.problems.lock().unwrap().clone();
        for name in self.names() {
            if !taken.contains(&name) && !name.ends_with("rotary_emb.inv_freq") {
                let (shape, _) = self.info(&name).unwrap_or((vec![], StoredDtype::F32));
                problems.push(format!("unexpected: `{name}` (shape {shape:?})"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Weights {
                path: self.origin.clone(),
                message: format!(
                    "checkpoint does not match config.json ({} problem{}):\n  {}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    problems.join("\n  ")
                ),
            })
        }
    }
}

/// The shard file names a `model.safetensors.index.json` text lists (`weight_map` values), sorted
/// and deduplicated; each must be a plain relative name ([`crate::paths::check_relative_name`]).
/// `index` names the file in messages.
pub fn index_shards(text: &str, index: &Path) -> Result<Vec<String>> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|source| Error::Json { path: index.into(), source })?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::config(index, "missing object field `weight_map`"))?;
    let mut files = BTreeSet::new();
    for (tensor, f) in map {
        let f = f
            .as_str()
            .ok_or_else(|| Error::config(index, format!("field `weight_map.{tensor}`: expected a file name")))?;
        crate::paths::check_relative_name(f, &format!("field `weight_map.{tensor}`:"))
            .map_err(|m| Error::config(index, m))?;
        files.insert(f.to_string());
    }
    if files.is_empty() {
        return Err(Error::config(index, "field `weight_map` names no file"));
    }
    Ok(files.into_iter().collect())
}

/// A parameter id derived from the HF weight name (FNV-1a), so that the same checkpoint loaded
/// twice gets the same ids: optimizer state saved for one run restores onto a reloaded model.
pub fn param_id(name: &str) -> burn::module::ParamId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    burn::module::ParamId::from(h)
}

/// A trainable parameter named after its HF weight.
pub fn named_param<B: Backend, const D: usize>(name: &str, value: Tensor<B, D>) -> burn::module::Param<Tensor<B, D>> {
    burn::module::Param::initialized(param_id(name), value.require_grad())
}
