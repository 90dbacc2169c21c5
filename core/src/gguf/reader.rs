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
    Array(Vec<Value>),
}

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
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// ggml tensor types this loader reads (the others are named in the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q8_0,
    Other(u32),
}

impl GgmlType {
    fn from_u32(v: u32) -> Self {
        match v {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// (elements per block, bytes per block)
    pub fn block(&self) -> Option<(usize, usize)> {
        Some(match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q8_0 => (32, 34),
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
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
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
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)? as usize;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err(&format!("{what} is not UTF-8")))
    }
    fn value(&mut self, ty: u32, key: &str) -> Result<Value> {
        let b = |c: &mut Self, n| c.take(n, key);
        Ok(match ty {
            0 => Value::U8(b(self, 1)?[0]),
            1 => Value::I8(b(self, 1)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(b(self, 2)?.try_into().unwrap())),
            3 => Value::I16(i16::from_le_bytes(b(self, 2)?.try_into().unwrap())),
            4 => Value::U32(u32::from_le_bytes(b(self, 4)?.try_into().unwrap())),
            5 => Value::I32(i32::from_le_bytes(b(self, 4)?.try_into().unwrap())),
            6 => Value::F32(f32::from_le_bytes(b(self, 4)?.try_into().unwrap())),
            7 => Value::Bool(b(self, 1)?[0] != 0),
            8 => Value::String(self.string(key)?),
            9 => {
                let ety = self.u32(key)?;
                let n = self.u64(key)? as usize;
                if n > self.buf.len() {
                    return Err(self.err(&format!("array `{key}` claims {n} elements")));
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(ety, key)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(u64::from_le_bytes(b(self, 8)?.try_into().unwrap())),
            11 => Value::I64(i64::from_le_bytes(b(self, 8)?.try_into().unwrap())),
            12 => Value::F64(f64::from_le_bytes(b(self, 8)?.try_into().unwrap())),
            other => return Err(self.err(&format!("unknown value type {other} for key `{key}`"))),
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
        let n_tensors = c.u64("tensor count")? as usize;
        let n_kv = c.u64("metadata count")? as usize;
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
            if nd > 8 {
                return Err(c.err(&format!("tensor `{name}` has {nd} dims")));
            }
            let mut dims = Vec::with_capacity(nd);
            for _ in 0..nd {
                dims.push(c.u64(&name)? as usize);
            }
            let ggml_type = GgmlType::from_u32(c.u32(&name)?);
            let offset = c.u64(&name)? as usize;
            tensors.insert(name, TensorInfo { dims, ggml_type, offset });
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(Value::as_u64)
            .unwrap_or(32) as usize;
        let data_start = c.pos.div_ceil(alignment) * alignment;
        let me = GgufFile {
            path: path.into(),
            version,
            metadata,
            tensors,
            mmap,
            data_start,
        };
        // Every tensor's bytes must lie inside the file.
        for (name, t) in &me.tensors {
            if let Some((per, bytes)) = t.ggml_type.block() {
                let n = t.elements();
                if n % per != 0 {
                    return Err(Error::Weights {
                        path: path.into(),
                        message: format!("tensor `{name}`: {n} elements is not a whole number of {} blocks", t.ggml_type.name()),
                    });
                }
                let end = me.data_start + t.offset + n / per * bytes;
                if end > me.mmap.len() {
                    return Err(Error::Weights {
                        path: path.into(),
                        message: format!("tensor `{name}` runs past the end of the file (truncated download?)"),
                    });
                }
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
        let t = self.tensors.get(name).ok_or_else(|| Error::Weights {
            path: self.path.clone(),
            message: format!("tensor `{name}` not found"),
        })?;
        let (per, bytes) = t.ggml_type.block().ok_or_else(|| Error::Weights {
            path: self.path.clone(),
            message: format!(
                "tensor `{name}` is stored as {}, which llmql cannot read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)",
                t.ggml_type.name()
            ),
        })?;
        let start = self.data_start + t.offset;
        Ok((t, &self.mmap[start..start + t.elements() / per * bytes]))
    }
}
