//! ggml block formats to f32. Every quantised format stores blocks of 32 values with an f16 scale
//! `d` (and, for Q4_1, an f16 minimum `m`):
//! - Q8_0: 32 signed bytes `q`, value = d * q
//! - Q4_0: 16 bytes of nibbles, value = d * (q - 8)
//! - Q4_1: 16 bytes of nibbles, value = d * q + m
//!
//! In the 4-bit formats byte j holds element j in its low nibble and element j + 16 in its high one.
use super::reader::GgmlType;
use half::{bf16, f16};

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Decodes `bytes` of type `ty` (whole blocks) into f32 values.
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    match ty {
        GgmlType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        GgmlType::F16 => bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        GgmlType::BF16 => bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        GgmlType::Q8_0 => {
            let mut out = Vec::with_capacity(bytes.len() / 34 * 32);
            for b in bytes.chunks_exact(34) {
                let d = f16_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| d * (q as i8) as f32));
            }
            out
        }
        GgmlType::Q4_0 => {
            let mut out = Vec::with_capacity(bytes.len() / 18 * 32);
            for b in bytes.chunks_exact(18) {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| d * ((q & 0x0f) as i32 - 8) as f32));
                out.extend(qs.iter().map(|&q| d * ((q >> 4) as i32 - 8) as f32));
            }
            out
        }
        GgmlType::Q4_1 => {
            let mut out = Vec::with_capacity(bytes.len() / 20 * 32);
            for b in bytes.chunks_exact(20) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| d * (q & 0x0f) as f32 + m));
                out.extend(qs.iter().map(|&q| d * (q >> 4) as f32 + m));
            }
            out
        }
        GgmlType::Other(_) => unreachable!("checked by GgufFile::tensor_bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: f32) -> [u8; 2] {
        f16::from_f32(v).to_le_bytes()
    }

    #[test]
    fn q4_1_block_layout() {
        // d = 0.5, m = -1; byte j = (low j%16, high 15 - j%16)
        let mut b = Vec::new();
        b.extend(h(0.5));
        b.extend(h(-1.0));
        for j in 0..16u8 {
            b.push(j | ((15 - j) << 4));
        }
        let v = dequantize(GgmlType::Q4_1, &b);
        assert_eq!(v.len(), 32);
        for j in 0..16 {
            assert_eq!(v[j], 0.5 * j as f32 - 1.0);
            assert_eq!(v[16 + j], 0.5 * (15 - j) as f32 - 1.0);
        }
    }

    #[test]
    fn q4_0_and_q8_0() {
        let mut b = Vec::new();
        b.extend(h(2.0));
        b.extend(std::iter::repeat_n(0x8fu8, 16)); // low 15 -> 7*2, high 8 -> 0
        let v = dequantize(GgmlType::Q4_0, &b);
        assert!(v[..16].iter().all(|&x| x == 14.0) && v[16..].iter().all(|&x| x == 0.0));
        let mut b = Vec::new();
        b.extend(h(0.25));
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let v = dequantize(GgmlType::Q8_0, &b);
        assert_eq!(v[0], -4.0);
        assert_eq!(v[31], 3.75);
    }
}
