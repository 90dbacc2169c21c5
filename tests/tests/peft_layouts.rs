//! PEFT adapters in every layout PEFT writes for these models, against PEFT itself
//! (tests/fixtures/peft-layouts/make_peft_layouts.py): adapters made by Python the Tevatron way
//! (`AutoModel` + FEATURE_EXTRACTION), the causal-LM way, and with the adapter name left in the keys
//! each load in llmql to PEFT's embeddings; llmql's default output has exactly the keys and config
//! PEFT writes on `AutoModel` (and an adapter llmql wrote, loaded by PEFT on `AutoModel`, gives
//! llmql's embeddings); an adapter that would apply nothing is caught; keys that fit no layout are
//! an error naming them.
#![cfg(feature = "flex")]
use burn::backend::Flex;
use burn::tensor::DType;
use llmql_core::encoder::embed;
use llmql_core::lora::{attach_lora, load_adapter, save_adapter, AdapterLayout, LoraConfig};
use llmql_core::model::{DecoderModel, LoadOptions};
use llmql_core::pooling::Pooling;
use llmql_core::ModelSource;
use llmql_tests::{fixture, max_abs_diff};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const TOL: f32 = 1e-4;

fn golden() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("peft-layouts/golden.json")).unwrap()).unwrap()
}

fn base() -> (ModelSource, DecoderModel<Flex>) {
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let m = ck
        .load_model(
            LoadOptions { dtype: DType::F32, lm_head: false, host_embeddings: false, compute_dtype: None },
            &Default::default(),
        )
        .unwrap();
    (ck, m)
}

fn mat(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect()
}

fn ids(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
        .collect()
}

/// eos-pooled, L2-normalised embeddings of the golden token ids, one sequence at a time.
fn vectors(ck: &ModelSource, m: &DecoderModel<Flex>, seqs: &[Vec<u32>]) -> Vec<Vec<f32>> {
    seqs.iter()
        .map(|s| {
            embed(m, std::slice::from_ref(s), ck.tokenizer.eos_id, Pooling::Eos, true)
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        })
        .collect()
}

fn worst(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().zip(b).map(|(x, y)| max_abs_diff(x, y)).fold(0.0, f32::max)
}

/// Loads `dir` onto tiny-llama and checks it gives `want`, and that it is not the base model.
fn check_loads_to(dir: &Path, want: &[Vec<f32>], g: &Value) {
    let (ck, m) = base();
    let seqs = ids(&g["input_ids"]);
    let base_vecs = vectors(&ck, &m, &seqs);
    assert!(worst(&base_vecs, &mat(&g["base_embeddings"])) <= TOL, "base model vs transformers");
    let got = vectors(&ck, &load_adapter(m, dir).unwrap(), &seqs);
    let d = worst(&got, want);
    assert!(d <= TOL, "{}: llmql vs PEFT max |diff| {d:.2e}", dir.display());
    // Not a no-op: an adapter dropped on the floor (as PEFT does with a layout it does not expect)
    // would leave the base model's vectors.
    let moved = worst(&got, &base_vecs);
    println!("{}: llmql vs PEFT max |diff| {d:.2e}; vs the base model {moved:.3}", dir.display());
    assert!(moved > 1e-2, "{}: the adapter changed nothing (max |diff| vs base {moved:.2e})", dir.display());
}

#[test]
fn every_peft_layout_loads_to_pefts_vectors() {
    let g = golden();
    for name in ["tevatron", "causal-lm", "tevatron-named"] {
        let want = mat(&g["adapters"][name]["peft_embeddings"]);
        check_loads_to(&fixture(&format!("peft-layouts/{name}")), &want, &g);
    }
    // The two layouts hold different weights: reading one as the other could not pass.
    let (a, b) =
        (mat(&g["adapters"]["tevatron"]["peft_embeddings"]), mat(&g["adapters"]["causal-lm"]["peft_embeddings"]));
    assert!(worst(&a, &b) > 1e-2);
}

/// The fixture's weights renamed: `f` maps each stored key to a new one.
fn renamed(src: &Path, dest: &Path, f: impl Fn(&str) -> String) {
    let bytes = std::fs::read(src.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().map(|(k, v)| (f(&k), v)).collect();
    std::fs::create_dir_all(dest).unwrap();
    safetensors::serialize_to_file(views, None, &dest.join("adapter_model.safetensors")).unwrap();
    std::fs::copy(src.join("adapter_config.json"), dest.join("adapter_config.json")).unwrap();
}

#[test]
fn adapter_names_in_keys_are_accepted_in_both_layouts() {
    let g = golden();
    let dir = tempfile::tempdir().unwrap();
    // Causal LM with an adapter name; AutoModel with a non-default one.
    let clm = dir.path().join("clm-named");
    renamed(&fixture("peft-layouts/causal-lm"), &clm, |k| k.replace(".weight", ".default.weight"));
    check_loads_to(&clm, &mat(&g["adapters"]["causal-lm"]["peft_embeddings"]), &g);
    let tev = dir.path().join("tev-named");
    renamed(&fixture("peft-layouts/tevatron"), &tev, |k| k.replace(".weight", ".retriever.weight"));
    check_loads_to(&tev, &mat(&g["adapters"]["tevatron"]["peft_embeddings"]), &g);
}

/// A key renaming (old name -> new name).
type Rename = Box<dyn Fn(&str) -> String>;

#[test]
fn keys_that_fit_no_layout_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("peft-layouts/tevatron");
    let cases: [(&str, Rename, &str); 4] = [
        // No `base_model.model.` prefix at all (a merged-style name).
        ("bare", Box::new(|k: &str| k.replace("base_model.model.", "")), "`layers.0.mlp.down_proj.lora_A.weight`"),
        // One tensor in the other layout: a mix.
        (
            "mixed",
            Box::new(|k: &str| {
                if k.contains("layers.1.mlp.up_proj.lora_B") {
                    k.replace("base_model.model.", "base_model.model.model.")
                } else {
                    k.to_string()
                }
            }),
            "`base_model.model.model.layers.1.mlp.up_proj.lora_B.weight`",
        ),
        // Two adapter names.
        (
            "two-names",
            Box::new(|k: &str| {
                if k.contains("layers.0.") {
                    k.replace(".weight", ".a.weight")
                } else {
                    k.replace(".weight", ".b.weight")
                }
            }),
            "mix adapter layouts or adapter names",
        ),
        // Something that is not a LoRA factor (e.g. a saved head).
        (
            "head",
            Box::new(|k: &str| {
                if k.contains("layers.1.mlp.up_proj.lora_B") {
                    "base_model.model.score.weight".into()
                } else {
                    k.to_string()
                }
            }),
            "`base_model.model.score.weight`",
        ),
    ];
    let (_, m) = base();
    for (name, f, want) in cases {
        let d = dir.path().join(name);
        renamed(&src, &d, f);
        let e = load_adapter(m.clone(), &d).unwrap_err().to_string();
        assert!(e.contains("adapter_model.safetensors") || e.contains(name), "{name}: {e}");
        assert!(e.contains(want), "{name}: {e}");
        if name != "two-names" {
            assert!(e.contains("base_model.model.layers.N.<module>.lora_A[.<adapter>].weight"), "{name}: {e}");
        }
    }
}

/// `{name: shape}` of an adapter file.
fn key_shapes(path: &Path) -> BTreeMap<String, Vec<usize>> {
    let w = llmql_core::weights::WeightFiles::open_files(path.parent().unwrap(), &[path.to_path_buf()]).unwrap();
    w.names().into_iter().map(|n| (n.clone(), w.info(&n).unwrap().0)).collect()
}

fn fixture_key_shapes(g: &Value, name: &str) -> BTreeMap<String, Vec<usize>> {
    g["adapters"][name]["keys"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()))
        .collect()
}

#[test]
fn written_adapters_have_exactly_the_keys_and_config_peft_writes() {
    let g = golden();
    let (_, m) = base();
    let dir = tempfile::tempdir().unwrap();
    for (layout, fixture_name) in [(AdapterLayout::default(), "tevatron"), (AdapterLayout::CausalLm, "causal-lm")] {
        let cfg = LoraConfig { r: 4, lora_alpha: 8.0, lora_dropout: 0.0, layout, ..Default::default() };
        let out = dir.path().join(fixture_name);
        save_adapter(&attach_lora(m.clone(), &cfg, 1).unwrap(), &cfg, "tests/fixtures/tiny-llama", &out).unwrap();
        assert_eq!(
            key_shapes(&out.join("adapter_model.safetensors")),
            fixture_key_shapes(&g, fixture_name),
            "{fixture_name}"
        );
        let ours: Value = serde_json::from_slice(&std::fs::read(out.join("adapter_config.json")).unwrap()).unwrap();
        let peft = &g["adapters"][fixture_name]["config"];
        for field in [
            "peft_type",
            "task_type",
            "r",
            "lora_dropout",
            "bias",
            "fan_in_fan_out",
            "use_rslora",
            "use_dora",
            "modules_to_save",
            "base_model_name_or_path",
        ] {
            assert_eq!(ours[field], peft[field], "{fixture_name}: field {field}");
        }
        assert_eq!(ours["lora_alpha"].as_f64(), peft["lora_alpha"].as_f64());
        let set = |v: &Value| -> std::collections::BTreeSet<String> {
            v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
        };
        assert_eq!(set(&ours["target_modules"]), set(&peft["target_modules"]));
    }
    // The Tevatron layout is the default.
    assert_eq!(AdapterLayout::default(), AdapterLayout::AutoModel);
    assert_eq!(LoraConfig::default().layout, AdapterLayout::AutoModel);
}

/// `ours-default/adapter` was written by `llmql train --lora` (default layout) and loaded by PEFT on
/// `AutoModel` the Tevatron way (`make_peft_layouts.py --check-llmql`, which fails on any missing key
/// and on an adapter that changes nothing); llmql's vectors with it equal PEFT's.
#[test]
fn our_default_adapter_loads_in_peft_on_automodel_to_our_vectors() {
    let g = golden();
    let ours: Value =
        serde_json::from_slice(&std::fs::read(fixture("peft-layouts/ours-default/ours_peft.json")).unwrap()).unwrap();
    assert_eq!(ours["loaded_on"], "AutoModel");
    assert_eq!(ours["input_ids"], g["input_ids"]);
    let dir = fixture("peft-layouts/ours-default/adapter");
    assert_eq!(key_shapes(&dir.join("adapter_model.safetensors")), fixture_key_shapes(&g, "tevatron"));
    check_loads_to(&dir, &mat(&ours["peft_embeddings"]), &g);
}
