//! The GGUF container (llama.cpp's model file, version 2 and 3): a header of typed key/value
//! metadata, a table of tensors (name, dims, ggml type, offset) and the aligned tensor data.
//! The file is memory-mapped; tensor bytes are sliced out on demand.
use crate::error::{Error, Result};
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

/// A metadata array, stored by element type so that memory follows the file's bytes (a `u8` array
/// costs one byte an element, not a whole [`Value`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    /// Arrays of arrays (nesting is bounded by [`MAX_ARRAY_DEPTH`]).
    Array(Vec<Array>),
}

impl Array {
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as f64 when they are numbers (integers widened, floats as they are).
    pub fn to_f64s(&self) -> Option<Vec<f64>> {
        fn conv<T: Copy + Into<f64>>(v: &[T]) -> Vec<f64> {
            v.iter().map(|&x| x.into()).collect()
        }
        Some(match self {
            Array::U8(v) => conv(v),
            Array::I8(v) => conv(v),
            Array::U16(v) => conv(v),
            Array::I16(v) => conv(v),
            Array::U32(v) => conv(v),
            Array::I32(v) => conv(v),
            Array::U64(v) => v.iter().map(|&x| x as f64).collect(),
            Array::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Array::F32(v) => conv(v),
            Array::F64(v) => v.clone(),
            Array::Bool(_) | Array::String(_) | Array::Array(_) => return None,
        })
    }

    /// The elements when they are strings.
    pub fn as_strings(&self) -> Option<&[String]> {
        match self {
            Array::String(v) => Some(v),
            _ => None,
        }
    }
}

/// Deepest nesting of metadata arrays read (llama.cpp writes none deeper than 1).
pub const MAX_ARRAY_DEPTH: usize = 4;

/// Alignment of the data section when `general.alignment` is absent (the GGUF default).
pub const DEFAULT_ALIGNMENT: usize = 32;

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) if v >= 0 => Some(v as u64),
            Value::I16(v) if v >= 0 => Some(v as u64),
            Value::I32(v) if v >= 0 => Some(v as u64),
            Value::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// ggml tensor types this loader reads (the others are named in the error), with ggml's names.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ4_NL,
    IQ4_XS,
    Other(u32),
}

/// Elements in a K-quant super-block (ggml's `QK_K`).
pub const QK_K: usize = 256;

impl GgmlType {
    pub fn from_u32(v: u32) -> Self {
        match v {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            10 => GgmlType::Q2_K,
            11 => GgmlType::Q3_K,
            12 => GgmlType::Q4_K,
            13 => GgmlType::Q5_K,
            14 => GgmlType::Q6_K,
            15 => GgmlType::Q8_K,
            20 => GgmlType::IQ4_NL,
            23 => GgmlType::IQ4_XS,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// (elements per block, bytes per block), as ggml's `GGML_QUANT_SIZES`.
    pub fn block(&self) -> Option<(usize, usize)> {
        Some(match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q2_K => (QK_K, 84),
            GgmlType::Q3_K => (QK_K, 110),
            GgmlType::Q4_K => (QK_K, 144),
            GgmlType::Q5_K => (QK_K, 176),
            GgmlType::Q6_K => (QK_K, 210),
            GgmlType::Q8_K => (QK_K, 292),
            GgmlType::IQ4_NL => (32, 18),
            GgmlType::IQ4_XS => (QK_K, 136),
            GgmlType::Other(_) => return None,
        })
    }

    pub fn name(&self) -> String {
        match self {
            GgmlType::Other(v) => format!("ggml type {v}"),
            t => format!("{t:?}"),
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// ggml dims, fastest first (the reverse of the PyTorch shape).
    pub dims: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: usize,
}

impl TensorInfo {
    /// The number of elements (checked when the file is opened: the product does not overflow).
    pub fn elements(&self) -> usize {
        self.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX)
    }

    /// Bytes of the tensor's data, `None` for types llmql cannot read or when it does not fit a usize.
    pub fn byte_len(&self) -> Option<usize> {
        let (per, bytes) = self.ggml_type.block()?;
        let n = self.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
        (n / per).checked_mul(bytes)
    }
    /// The PyTorch (row-major, slowest first) shape.
    pub fn torch_shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: BTreeMap<String, TensorInfo>,
    mmap: Mmap,
    data_start: usize,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> Error {
        Error::Weights {
            path: self.path.into(),
            message: format!("not a valid GGUF file: {what} at byte {}", self.pos),
        }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.pos.checked_add(n).is_none_or(|end| end > self.buf.len()) {
            return Err(self.err(&format!("truncated while reading {what}")));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    /// Bytes not read yet.
    fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    /// A length field, refused when it claims more than the bytes left could hold at
    /// `min_bytes` bytes an item (so no allocation is ever larger than the file allows).
    fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let limit = (self.left() / min_bytes.max(1)) as u64;
        if n > limit {
            return Err(
                self.err(&format!("{what} claims {n} items, more than the {} bytes left can hold", self.left()))
            );
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(what, 1)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err(&format!("{what} is not UTF-8")))
    }
    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.take(N, what)?.try_into().expect("N bytes"))
    }
    fn value(&mut self, ty: u32, key: &str) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.fixed::<1>(key)?[0]),
            1 => Value::I8(self.fixed::<1>(key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.fixed(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.fixed(key)?)),
            4 => Value::U32(u32::from_le_bytes(self.fixed(key)?)),
            5 => Value::I32(i32::from_le_bytes(self.fixed(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.fixed(key)?)),
            7 => Value::Bool(self.fixed::<1>(key)?[0] != 0),
            8 => Value::String(self.string(key)?),
            9 => Value::Array(self.array(key, 1)?),
            10 => Value::U64(u64::from_le_bytes(self.fixed(key)?)),
            11 => Value::I64(i64::from_le_bytes(self.fixed(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.fixed(key)?)),
            other => return Err(self.err(&format!("unknown value type {other} for key `{key}`"))),
        })
    }
    /// An array (element type, count, elements) at nesting `depth` (1 for a top-level array).
    fn array(&mut self, key: &str, depth: usize) -> Result<Array> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(self.err(&format!("array `{key}` is nested deeper than {MAX_ARRAY_DEPTH} levels")));
        }
        let ety = self.u32(key)?;
        // The smallest encoding of one element bounds the count by the bytes left.
        let min_bytes = match ety {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10..=12 => 8,
            9 => 12,
            other => return Err(self.err(&format!("unknown value type {other} in array `{key}`"))),
        };
        let n = self.count(&format!("array `{key}`"), min_bytes)?;
        fn many<T>(c: &mut Cursor<'_>, n: usize, mut one: impl FnMut(&mut Cursor<'_>) -> Result<T>) -> Result<Vec<T>> {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(one(c)?);
            }
            Ok(v)
        }
        Ok(match ety {
            0 => Array::U8(self.take(n, key)?.to_vec()),
            1 => Array::I8(self.take(n, key)?.iter().map(|&b| b as i8).collect()),
            2 => Array::U16(many(self, n, |c| Ok(u16::from_le_bytes(c.fixed(key)?)))?),
            3 => Array::I16(many(self, n, |c| Ok(i16::from_le_bytes(c.fixed(key)?)))?),
            4 => Array::U32(many(self, n, |c| Ok(u32::from_le_bytes(c.fixed(key)?)))?),
            5 => Array::I32(many(self, n, |c| Ok(i32::from_le_bytes(c.fixed(key)?)))?),
            6 => Array::F32(many(self, n, |c| Ok(f32::from_le_bytes(c.fixed(key)?)))?),
            7 => Array::Bool(self.take(n, key)?.iter().map(|&b| b != 0).collect()),
            8 => Array::String(many(self, n, |c| c.string(key))?),
            9 => Array::Array(many(self, n, |c| c.array(key, depth + 1))?),
            10 => Array::U64(many(self, n, |c| Ok(u64::from_le_bytes(c.fixed(key)?)))?),
            11 => Array::I64(many(self, n, |c| Ok(i64::from_le_bytes(c.fixed(key)?)))?),
            12 => Array::F64(many(self, n, |c| Ok(f64::from_le_bytes(c.fixed(key)?)))?),
            _ => unreachable!("element type checked above"),
        })
    }
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only map; like every mmap-based loader we assume the file is not truncated
        // while it is open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let mut c = Cursor { buf: &mmap, pos: 0, path };
        if c.take(4, "magic")? != b"GGUF" {
            return Err(Error::Weights {
                path: path.into(),
                message: "not a GGUF file (the first four bytes are not `GGUF`)".into(),
            });
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(Error::Weights {
                path: path.into(),
                message: format!("GGUF version {version} is not supported (2 or 3)"),
            });
        }
        // A metadata entry takes at least 12 bytes (key length + type), a tensor entry at least 24.
        let n_tensors = c.count("tensor count", 24)?;
        let n_kv = c.count("metadata count", 12)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string("metadata key")?;
            let ty = c.u32(&key)?;
            let v = c.value(ty, &key)?;
            metadata.insert(key, v);
        }
        let mut tensors = BTreeMap::new();
        for _ in 0..n_tensors {
            let name = c.string("tensor name")?;
            let nd = c.u32(&name)? as usize;
            if !(1..=4).contains(&nd) {
                return Err(c.err(&format!("tensor `{name}` has {nd} dimensions (GGUF tensors have 1 to 4)")));
            }
            let mut dims = Vec::with_capacity(nd);
            for _ in 0..nd {
                let d = usize::try_from(c.u64(&name)?)
                    .map_err(|_| c.err(&format!("tensor `{name}`: dimension too large")))?;
                dims.push(d);
            }
            let ggml_type = GgmlType::from_u32(c.u32(&name)?);
            let offset =
                usize::try_from(c.u64(&name)?).map_err(|_| c.err(&format!("tensor `{name}`: offset too large")))?;
            if tensors.insert(name.clone(), TensorInfo { dims, ggml_type, offset }).is_some() {
                return Err(c.err(&format!("tensor `{name}` is listed twice")));
            }
        }
        let bad = |message: String| Error::Weights {
            path: path.into(),
            message: format!("not a valid GGUF file: {message}"),
        };
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64().and_then(|a| usize::try_from(a).ok()) {
                Some(a) if a.is_power_of_two() => a,
                _ => return Err(bad(format!("`general.alignment` = {v:?} is not a power of two"))),
            },
        };
        let data_start = c
            .pos
            .checked_next_multiple_of(alignment)
            .ok_or_else(|| bad(format!("`general.alignment` = {alignment} puts the data past any file")))?;
        let me = GgufFile { path: path.into(), version, metadata, tensors, mmap, data_start };
        // Every tensor's bytes must lie inside the file (checked arithmetic throughout).
        for (name, t) in &me.tensors {
            let Some((per, _)) = t.ggml_type.block() else {
                continue;
            };
            let Some(n) = t.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
                return Err(bad(format!("tensor `{name}`: the element count of {:?} overflows", t.dims)));
            };
            // ggml quantises row by row: each row (the fastest dimension) is whole blocks.
            let row = t.dims.first().copied().unwrap_or(1);
            if n % per != 0 || row % per != 0 {
                return Err(Error::Weights {
                    path: path.into(),
                    message: format!(
                        "tensor `{name}`: rows of {row} elements ({n} in all) are not a whole number of {} blocks of {per}",
                        t.ggml_type.name()
                    ),
                });
            }
            let end = t.byte_len().and_then(|len| me.data_start.checked_add(t.offset)?.checked_add(len));
            if end.is_none_or(|end| end > me.mmap.len()) {
                return Err(Error::Weights {
                    path: path.into(),
                    message: format!("tensor `{name}` runs past the end of the file (truncated download?)"),
                });
            }
        }
        Ok(me)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A required metadata value, with an error naming the key.
    pub fn need(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| Error::config(&self.path, format!("missing GGUF metadata `{key}`")))
    }

    pub fn need_u64(&self, key: &str) -> Result<u64> {
        self.need(key)?
            .as_u64()
            .ok_or_else(|| Error::config(&self.path, format!("GGUF metadata `{key}` is not an unsigned integer")))
    }

    /// The raw bytes of a tensor.
    pub fn tensor_bytes(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::Weights { path: self.path.clone(), message: format!("tensor `{name}` not found") })?;
        let (per, bytes) = t.ggml_type.block().ok_or_else(|| Error::Weights {
            path: self.path.clone(),
            message: format!(
                "tensor `{name}` is stored as {}, which llmql cannot read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL, IQ4_XS)",
                t.ggml_type.name()
            ),
        })?;
        // Bounds were checked when the file was opened; checked again here rather than trusted.
        let _ = (per, bytes);
        let range = t
            .byte_len()
            .and_then(|len| Some((self.data_start.checked_add(t.offset)?, len)))
            .and_then(|(start, len)| Some(start..start.checked_add(len)?))
            .filter(|r| r.end <= self.mmap.len())
            .ok_or_else(|| Error::Weights {
                path: self.path.clone(),
                message: format!("tensor `{name}` lies outside the file"),
            })?;
        Ok((t, &self.mmap[range]))
    }
}
