//! `.npy` (NumPy format 1.0) for `[rows, dim]` float32 matrices: written in a streaming way (rows
//! appended, header patched at the end) and read back.
use crate::error::{Error, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";
/// Header padded to a fixed size so it can be rewritten in place once the row count is known.
const HEADER_LEN: usize = 128;

fn header(rows: usize, dim: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&[1, 0]);
    let body_len = HEADER_LEN - 10;
    h.extend_from_slice(&(body_len as u16).to_le_bytes());
    let mut body = dict.into_bytes();
    body.resize(body_len - 1, b' ');
    body.push(b'\n');
    h.extend_from_slice(&body);
    h
}

/// Streams rows into an `.npy` file.
pub struct NpyWriter<W: Write + Seek> {
    out: W,
    dim: usize,
    rows: usize,
}

impl<W: Write + Seek> NpyWriter<W> {
    pub fn new(mut out: W, dim: usize) -> std::io::Result<Self> {
        out.write_all(&header(0, dim))?;
        Ok(Self { out, dim, rows: 0 })
    }

    pub fn write_row(&mut self, row: &[f32]) -> std::io::Result<()> {
        assert_eq!(row.len(), self.dim, "row length must equal dim");
        let mut buf = Vec::with_capacity(row.len() * 4);
        for v in row {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&buf)?;
        self.rows += 1;
        Ok(())
    }

    /// Patches the header with the final shape and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header(self.rows, self.dim))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a float32 C-order 2-D `.npy`: `(values, rows, dim)`.
pub fn read_f32_matrix(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    parse_f32_matrix(&bytes, path)
}

/// Parses the bytes of a float32 C-order 2-D `.npy` (`path` names it in messages).
pub fn parse_f32_matrix(bytes: &[u8], path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let (start, rows, dim) = f32_matrix_layout(bytes, path)?;
    let values = bytes[start..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((values, rows, dim))
}

/// Checks the header and size of a float32 C-order 2-D `.npy` held in `bytes` (read or mapped):
/// `(offset of the data, rows, dim)`.
pub fn f32_matrix_layout(bytes: &[u8], path: &Path) -> Result<(usize, usize, usize)> {
    let bad = |m: &str| Error::Other(format!("{}: not a float32 2-D .npy file: {m}", path.display()));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("bad magic"));
    }
    let (hlen, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        2 | 3 => return Err(bad("truncated header")),
        _ => return Err(bad("unknown version")),
    };
    let data_start = start.checked_add(hlen).filter(|&e| e <= bytes.len()).ok_or_else(|| bad("truncated header"))?;
    let dict = std::str::from_utf8(&bytes[start..data_start]).map_err(|_| bad("header"))?;
    if !dict.contains("'<f4'") || dict.contains("'fortran_order': True") {
        return Err(bad("need descr '<f4' in C order"));
    }
    let shape = dict.split("'shape':").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape
        .trim()
        .trim_start_matches('(')
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("shape"))?;
    if dims.len() != 2 {
        return Err(bad("expected 2 dimensions"));
    }
    let data = &bytes[data_start..];
    // Checked: a shape whose byte size overflows is refused here, not trusted by later code.
    let want = dims[0].checked_mul(dims[1]).and_then(|n| n.checked_mul(4));
    if want != Some(data.len()) {
        return Err(bad(&format!("data length {} does not match shape ({}, {})", data.len(), dims[0], dims[1])));
    }
    if dims[1] == 0 && dims[0] > 0 {
        return Err(bad("rows of 0 columns"));
    }
    Ok((data_start, dims[0], dims[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_headers_are_errors() {
        let p = Path::new("e.npy");
        // Version 2 header in a 10-byte file.
        let e = parse_f32_matrix(b"\x93NUMPY\x02\x00\x10\x00", p).unwrap_err().to_string();
        assert!(e.contains("truncated header"), "{e}");
        // A shape whose byte size overflows usize (and whose data is empty).
        let mut h = header(1, 1);
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904), }";
        h.truncate(10);
        h[8..10].copy_from_slice(&(dict.len() as u16).to_le_bytes());
        h.extend_from_slice(dict.as_bytes());
        let e = parse_f32_matrix(&h, p).unwrap_err().to_string();
        assert!(e.contains("does not match shape"), "{e}");
        // Header length pointing past the end.
        let mut h = header(0, 3);
        h[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(parse_f32_matrix(&h, p).unwrap_err().to_string().contains("truncated header"));
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.npy");
        let f = std::fs::File::create(&p).unwrap();
        let mut w = NpyWriter::new(f, 3).unwrap();
        w.write_row(&[1.0, 2.0, 3.0]).unwrap();
        w.write_row(&[4.0, -5.5, 6.0]).unwrap();
        w.finish().unwrap();
        let (v, r, d) = read_f32_matrix(&p).unwrap();
        assert_eq!((r, d), (2, 3));
        assert_eq!(v, vec![1.0, 2.0, 3.0, 4.0, -5.5, 6.0]);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!((bytes.len() - HEADER_LEN) % 4, 0);
        assert_eq!(HEADER_LEN % 64, 0);
    }
}
