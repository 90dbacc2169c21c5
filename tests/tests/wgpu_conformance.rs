//! Cross-backend conformance: flex (CPU) and wgpu give the same embeddings within 1e-4.
//! CI runs wgpu on lavapipe (mesa-vulkan-drivers). Built only with `--features wgpu`.
#![cfg(all(feature = "wgpu", feature = "flex"))]
use burn::backend::{wgpu::WgpuDevice, Flex, Wgpu};
use llmql_tests::*;

#[test]
fn flex_and_wgpu_agree_on_every_family() {
    let wdev = WgpuDevice::DefaultDevice;
    let fdev = Default::default();
    for model in FAMILIES {
        // A few cases per family keep the (JIT-compiling) wgpu run short.
        let g = golden(model);
        for case in g.cases.iter().filter(|c| c.name.contains("passage")).take(2) {
            let ef = encoder::<Flex>(model, case.template, case.max_len, true, &fdev);
            let ew = encoder::<Wgpu>(model, case.template, case.max_len, true, &wdev);
            let ids = ef.tokenize(case.kind, case.title.as_deref(), &case.text).unwrap();
            let short = vec![ids[0], g.eos_id];
            let a = ef.embed_ids_to_vec(&[ids.clone(), short.clone()]);
            let b = ew.embed_ids_to_vec(&[ids, short]);
            for (x, y) in a.iter().zip(&b) {
                let d = max_abs_diff(x, y);
                assert!(d <= 1e-4, "{model}/{}: flex vs wgpu differ by {d:e}", case.name);
            }
            let d = max_abs_diff(&b[0], &case.embedding);
            assert!(d <= 1e-4, "{model}/{}: wgpu vs transformers differ by {d:e}", case.name);
        }
    }
}
