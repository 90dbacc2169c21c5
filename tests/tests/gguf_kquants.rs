//! Dequantisation of every ggml block type llmql reads against gguf-py's reference dequantiser
//! (`gguf.quants.dequantize`; Q8_K, absent from gguf-py, against ggml's formula), on random blocks
//! from tests/fixtures/gguf/make_kquant_fixtures.py, bit for bit.
use llmql_core::gguf::dequant::dequantize;
use llmql_core::gguf::GgmlType;
use llmql_tests::fixture;
use serde_json::Value;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn every_block_type_matches_gguf_py() {
    let g: Value = serde_json::from_slice(&std::fs::read(fixture("gguf/kquant_blocks.json")).unwrap()).unwrap();
    let types = g["types"].as_object().unwrap();
    let want_types =
        ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ4_NL", "IQ4_XS"];
    assert_eq!(types.len(), want_types.len());
    for name in want_types {
        let t = &types[name];
        let ty = GgmlType::from_u32(t["ggml_type"].as_u64().unwrap() as u32);
        assert_eq!(ty.name(), name, "ggml type id {}", t["ggml_type"]);
        let (per, size) = ty.block().unwrap();
        assert_eq!(
            (per as u64, size as u64),
            (t["block_elements"].as_u64().unwrap(), t["block_bytes"].as_u64().unwrap()),
            "{name}"
        );
        let bytes = hex(t["bytes_hex"].as_str().unwrap());
        let want: Vec<f32> = hex(t["values_f32le_hex"].as_str().unwrap())
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let got = dequantize(ty, &bytes);
        assert_eq!(got.len(), want.len(), "{name}");
        let mismatches: Vec<usize> = (0..got.len()).filter(|&i| got[i].to_bits() != want[i].to_bits()).collect();
        assert!(
            mismatches.is_empty(),
            "{name}: {} of {} values differ from gguf-py, first at {}: {} vs {}",
            mismatches.len(),
            got.len(),
            mismatches[0],
            got[mismatches[0]],
            want[mismatches[0]]
        );
        // The blocks are not degenerate: most values are non-zero and they vary.
        assert!(got.iter().filter(|v| **v != 0.0).count() > got.len() / 2, "{name}");
    }
}
