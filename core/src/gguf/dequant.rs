//! ggml block formats to f32, as ggml's `dequantize_row_*` (and gguf-py's `gguf.quants`) compute
//! them, operation for operation in f32 (parity with gguf-py on random blocks of every type:
//! tests/tests/gguf_kquants.rs).
//!
//! Blocks of 32 with an f16 scale `d` (and for the `_1` kinds an f16 minimum `m`):
//! - Q8_0: 32 signed bytes `q`, value = d * q
//! - Q4_0 / Q4_1: 16 bytes of nibbles, value = d * (q - 8) / d * q + m
//! - Q5_0 / Q5_1: the nibbles plus a 32-bit mask of fifth bits, value = d * (q - 16) / d * q + m
//! - IQ4_NL: nibbles indexing a fixed non-linear table of 16 values, value = d * table[q]
//!
//! In these byte j holds element j in its low nibble and element j + 16 in its high one.
//!
//! K-quants: super-blocks of 256 ([`QK_K`]) in sub-blocks of 16 or 32, each with its own small
//! scale (and minimum) quantised against the super-block's f16 `d` (and `dmin`):
//! - Q2_K: 2-bit q, 4-bit scale and min per 16: value = (d * sc) * q - (dmin * m)
//! - Q3_K: 2-bit q plus a high-bit mask, 6-bit signed scales per 16: value = (d * sc) * q, q in -4..3
//! - Q4_K / Q5_K: 4 (+1) bit q, 6-bit scale and min per 32 (packed in 12 bytes): (d * sc) * q - (dmin * m)
//! - Q6_K: 4 + 2 bit q, i8 scale per 16: value = (d * sc) * (q - 32)
//! - Q8_K: f32 `d`, 256 signed bytes: value = d * q (the `bsums` are for dot products only)
//! - IQ4_XS: IQ4_NL's table with 6-bit signed scales per 32: value = (d * (sc - 32)) * table[q]
use super::reader::{GgmlType, QK_K};
use half::{bf16, f16};

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// IQ4_NL / IQ4_XS values (ggml's `kvalues_iq4nl`).
const IQ4_VALUES: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// Decodes `bytes` of type `ty` (whole blocks) into f32 values.
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    match ty {
        GgmlType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        GgmlType::F16 => bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        GgmlType::BF16 => bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        GgmlType::Other(_) => unreachable!("checked by GgufFile::tensor_bytes"),
        quantised => {
            let (per, size) = quantised.block().expect("a block type");
            let block: fn(&[u8], &mut [f32]) = match quantised {
                GgmlType::Q8_0 => q8_0,
                GgmlType::Q4_0 => q4_0,
                GgmlType::Q4_1 => q4_1,
                GgmlType::Q5_0 => q5_0,
                GgmlType::Q5_1 => q5_1,
                GgmlType::IQ4_NL => iq4_nl,
                GgmlType::Q2_K => q2_k,
                GgmlType::Q3_K => q3_k,
                GgmlType::Q4_K => q4_k,
                GgmlType::Q5_K => q5_k,
                GgmlType::Q6_K => q6_k,
                GgmlType::Q8_K => q8_k,
                GgmlType::IQ4_XS => iq4_xs,
                GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Other(_) => {
                    unreachable!()
                }
            };
            let mut out = vec![0f32; bytes.len() / size * per];
            for (b, o) in bytes.chunks_exact(size).zip(out.chunks_exact_mut(per)) {
                block(b, o);
            }
            out
        }
    }
}

fn q8_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, &q) in o.iter_mut().zip(&b[2..34]) {
        *o = d * (q as i8) as f32;
    }
}

/// Element `j` of 32 from 16 bytes of nibbles (low nibbles first, then high).
fn nibble(qs: &[u8], j: usize) -> u8 {
    if j < 16 {
        qs[j] & 0x0f
    } else {
        qs[j - 16] >> 4
    }
}

fn q4_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, o) in o.iter_mut().enumerate() {
        *o = d * (nibble(&b[2..18], j) as i32 - 8) as f32;
    }
}

fn q4_1(b: &[u8], o: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, o) in o.iter_mut().enumerate() {
        *o = d * nibble(&b[4..20], j) as f32 + m;
    }
}

/// The 5-bit value `j` of a Q5_0/Q5_1 block: nibble plus bit `j` of the little-endian mask `qh`.
fn five_bits(qh: &[u8], qs: &[u8], j: usize) -> u8 {
    let mask = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    nibble(qs, j) | ((((mask >> j) & 1) as u8) << 4)
}

fn q5_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, o) in o.iter_mut().enumerate() {
        *o = d * (five_bits(&b[2..6], &b[6..22], j) as i32 - 16) as f32;
    }
}

fn q5_1(b: &[u8], o: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, o) in o.iter_mut().enumerate() {
        *o = d * five_bits(&b[4..8], &b[8..24], j) as f32 + m;
    }
}

fn iq4_nl(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, o) in o.iter_mut().enumerate() {
        *o = d * IQ4_VALUES[nibble(&b[2..18], j) as usize] as f32;
    }
}

/// Layout: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin. Element
/// `e = h*128 + j*32 + l` is bits `2j..2j+2` of `qs[h*32 + l]`; sub-block `e / 16`.
fn q2_k(b: &[u8], o: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    for (e, o) in o.iter_mut().enumerate() {
        let (h, j, l) = (e / 128, (e / 32) % 4, e % 32);
        let q = (qs[h * 32 + l] >> (2 * j)) & 3;
        let sc = scales[e / 16];
        *o = (d * (sc & 0x0f) as f32) * q as f32 - dmin * (sc >> 4) as f32;
    }
}

/// Layout: hmask[32], qs[64], scales[12] (16 six-bit scales), d. Low 2 bits as Q2_K; element `e`'s
/// high bit is bit `e / 32` of `hmask[e % 32]`, and a clear bit subtracts 4.
fn q3_k(b: &[u8], o: &mut [f32]) {
    let (hmask, qs, sc) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = f16_at(b, 108);
    let mut scales = [0f32; 16];
    for (k, s) in scales.iter_mut().enumerate() {
        let low = if k < 8 { sc[k] & 0x0f } else { sc[k - 8] >> 4 };
        let high = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
        *s = ((low | (high << 4)) as i8 - 32) as f32;
    }
    for (e, o) in o.iter_mut().enumerate() {
        let (h, j, l) = (e / 128, (e / 32) % 4, e % 32);
        let low = ((qs[h * 32 + l] >> (2 * j)) & 3) as i8;
        let high = (hmask[l] >> (e / 32)) & 1;
        let q = low - if high == 0 { 4 } else { 0 };
        *o = (d * scales[e / 16]) * q as f32;
    }
}

/// The 8 six-bit scales and mins of Q4_K/Q5_K, packed in 12 bytes (ggml's `get_scale_min_k4`).
fn scale_min_k4(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0x0f) | ((s[j] >> 2) & 0x30);
        m[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30);
    }
    (sc, m)
}

/// Element `e = c*64 + s*32 + l` of Q4_K/Q5_K is nibble `s` of `qs[c*32 + l]`; sub-block `e / 32`.
fn k4_nibble(qs: &[u8], e: usize) -> u8 {
    let (c, s, l) = (e / 64, (e / 32) % 2, e % 32);
    (qs[c * 32 + l] >> (4 * s)) & 0x0f
}

/// Layout: d, dmin, scales[12], qs[128].
fn q4_k(b: &[u8], o: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, m) = scale_min_k4(&b[4..16]);
    let qs = &b[16..144];
    for (e, o) in o.iter_mut().enumerate() {
        let sb = e / 32;
        *o = (d * sc[sb] as f32) * k4_nibble(qs, e) as f32 - dmin * m[sb] as f32;
    }
}

/// Layout: d, dmin, scales[12], qh[32], qs[128]; the fifth bit of element `e` is bit `e / 32` of
/// `qh[e % 32]`.
fn q5_k(b: &[u8], o: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, m) = scale_min_k4(&b[4..16]);
    let (qh, qs) = (&b[16..48], &b[48..176]);
    for (e, o) in o.iter_mut().enumerate() {
        let sb = e / 32;
        let q = k4_nibble(qs, e) | (((qh[e % 32] >> sb) & 1) << 4);
        *o = (d * sc[sb] as f32) * q as f32 - dmin * m[sb] as f32;
    }
}

/// Layout: ql[128], qh[64], scales[16] (i8), d. Element `e = h*128 + s*64 + m` has low bits
/// nibble `s` of `ql[h*64 + m]` and high bits `2j..2j+2` of `qh[h*32 + e % 32]` with
/// `j = (e % 128) / 32`; sub-block `e / 16`.
fn q6_k(b: &[u8], o: &mut [f32]) {
    let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    for (e, o) in o.iter_mut().enumerate() {
        let (h, r) = (e / 128, e % 128);
        let low = (ql[h * 64 + r % 64] >> (4 * (r / 64))) & 0x0f;
        let high = (qh[h * 32 + r % 32] >> (2 * (r / 32))) & 3;
        let q = (low | (high << 4)) as i8 - 32;
        *o = (d * scales[e / 16] as i8 as f32) * q as f32;
    }
}

/// Layout: d (f32), qs[256] (i8), bsums[16] (i16, unused here).
fn q8_k(b: &[u8], o: &mut [f32]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (o, &q) in o.iter_mut().zip(&b[4..4 + QK_K]) {
        *o = d * (q as i8) as f32;
    }
}

/// Layout: d, scales_h (u16: 2 high bits per sub-block), scales_l[4] (a nibble per sub-block),
/// qs[128]; element `e = b*32 + s*16 + m` is nibble `s` of `qs[b*16 + m]`; sub-block `b`.
fn iq4_xs(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let scales_h = u16::from_le_bytes([b[2], b[3]]);
    let (scales_l, qs) = (&b[4..8], &b[8..136]);
    for (sb, out) in o.chunks_exact_mut(32).enumerate() {
        let low = (scales_l[sb / 2] >> (4 * (sb % 2))) & 0x0f;
        let high = ((scales_h >> (2 * sb)) & 3) as u8;
        let dl = d * ((low | (high << 4)) as i8 - 32) as f32;
        for (j, o) in out.iter_mut().enumerate() {
            *o = dl * IQ4_VALUES[nibble(&qs[sb * 16..sb * 16 + 16], j) as usize] as f32;
        }
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
