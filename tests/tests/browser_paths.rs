//! The browser's entry points, natively: a checkpoint built from bytes (no file system), a PEFT
//! adapter from bytes, token embeddings looked up on the host (for tables over a WebGPU binding),
//! the async readback and the host-side index search all give what the file-based paths give.
#![cfg(feature = "flex")]
use burn::backend::Flex;
use burn::tensor::DType;
use llmql_core::encoder::HostEmbeddings;
use llmql_core::lora::{load_adapter, load_adapter_bytes, merge_lora};
use llmql_core::model::LoadOptions;
use llmql_core::search::{search_in_memory, Embeddings};
use llmql_core::{Encoder, EncoderOptions, Kind, ModelSource};
use llmql_tests::{fixture, max_abs_diff};
use std::path::Path;

const TEXTS: [(Option<&str>, &str); 3] = [
    (Some("Bees"), "Worker bees turn nectar into honey inside the hive."),
    (None, "Rivers carry water to the sea."),
    (Some(""), "a"),
];

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

fn from_bytes(dir: &Path) -> ModelSource {
    ModelSource::from_bytes(
        "dropped-folder",
        &read(dir, "config.json"),
        &read(dir, "tokenizer.json"),
        std::fs::read(dir.join("tokenizer_config.json")).ok().as_deref(),
        // Every safetensors file, as the page hands over a dropped folder's (tiny-mistral has 3 shards).
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".safetensors"))
            .map(|n| (n.clone(), read(dir, &n)))
            .collect(),
    )
    .unwrap()
}

fn encode(enc: &Encoder<Flex>) -> Vec<Vec<f32>> {
    enc.encode_texts(Kind::Passage, &TEXTS, 2).unwrap()
}

#[test]
fn checkpoint_from_bytes_encodes_like_the_folder() {
    for model in ["tiny-llama", "tiny-qwen2", "tiny-mistral"] {
        let dir = fixture(model);
        let device = Default::default();
        let a =
            Encoder::<Flex>::load(&ModelSource::open(&dir).unwrap(), EncoderOptions::default(), DType::F32, &device)
                .unwrap();
        let ck = from_bytes(&dir);
        assert_eq!(ck.tokenizer.eos_id, a.tokenizer.eos_id, "{model}");
        let b = Encoder::<Flex>::load(&ck, EncoderOptions::default(), DType::F32, &device).unwrap();
        assert_eq!(encode(&a), encode(&b), "{model}: bytes-backed checkpoint differs");
    }
}

#[test]
fn checkpoint_from_bytes_names_bad_input() {
    let dir = fixture("tiny-llama");
    let err = ModelSource::from_bytes("upload", b"{not json", &read(&dir, "tokenizer.json"), None, vec![])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("upload") && err.contains("config.json"), "{err}");
    let err = ModelSource::from_bytes(
        "upload",
        &read(&dir, "config.json"),
        &read(&dir, "tokenizer.json"),
        None,
        vec![("shard-1.safetensors".into(), b"garbage".to_vec())],
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("shard-1.safetensors") && err.contains("not a valid safetensors"), "{err}");
}

#[test]
fn host_embedding_lookup_equals_device_lookup() {
    for model in ["tiny-llama", "tiny-qwen2"] {
        let ck = ModelSource::open(&fixture(model)).unwrap();
        let device = Default::default();
        let a = Encoder::<Flex>::load(&ck, EncoderOptions::default(), DType::F32, &device).unwrap();
        let load = LoadOptions { dtype: DType::F32, lm_head: false, host_embeddings: true, compute_dtype: None };
        let b = Encoder::<Flex>::load_with(&ck, EncoderOptions::default(), load, &device).unwrap();
        assert!(b.host_embeddings.is_some());
        // The device copy is only a placeholder row.
        assert_eq!(b.model.embed_tokens.val().dims(), [1, ck.config.hidden_size]);
        let d = max_abs_diff(&encode(&a).concat(), &encode(&b).concat());
        assert!(d < 1e-6, "{model}: host lookup differs by {d}");
        assert!(HostEmbeddings::read(&ck).unwrap().table.len() == ck.config.vocab_size * ck.config.hidden_size);
    }
}

#[test]
fn adapter_from_bytes_equals_adapter_from_folder() {
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let adapter = fixture("stage2/adapter");
    let device = Default::default();
    let load = LoadOptions { dtype: DType::F32, lm_head: false, host_embeddings: false, compute_dtype: None };
    let opts = EncoderOptions::default();
    let base = Encoder::<Flex>::load(&ck, opts, DType::F32, &device).unwrap();
    let plain = encode(&base);
    let folder = merge_lora(load_adapter(ck.load_model::<Flex>(load, &device).unwrap(), &adapter).unwrap());
    let cfg = String::from_utf8(read(&adapter, "adapter_config.json")).unwrap();
    let bytes = merge_lora(
        load_adapter_bytes(
            ck.load_model::<Flex>(load, &device).unwrap(),
            &cfg,
            read(&adapter, "adapter_model.safetensors"),
        )
        .unwrap(),
    );
    let a = encode(&Encoder::from_model(folder, ck.tokenizer.clone(), opts, None));
    let b = encode(&Encoder::from_model(bytes, ck.tokenizer.clone(), opts, None));
    assert_eq!(a, b);
    assert!(max_abs_diff(&a.concat(), &plain.concat()) > 1e-3, "the adapter changed nothing");
    // A broken adapter config is named.
    let err = load_adapter_bytes(ck.load_model::<Flex>(load, &device).unwrap(), "{\"peft_type\": \"IA3\"}", vec![])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("adapter_config.json") && err.contains("LORA"), "{err}");
}

#[test]
fn async_readback_equals_sync_readback() {
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let enc = Encoder::<Flex>::load(&ck, EncoderOptions::default(), DType::F32, &Default::default()).unwrap();
    let seqs: Vec<Vec<u32>> = TEXTS.iter().map(|(t, x)| enc.tokenize(Kind::Query, *t, x).unwrap()).collect();
    let sync = enc.embed_ids_to_vec(&seqs);
    let asynchronous = block_on(enc.embed_ids_to_vec_async(&seqs)).unwrap();
    assert_eq!(sync, asynchronous);
}

/// Polls a future to completion (flex readbacks are ready on the first poll).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
    fn noop(_: *const ()) {}
    fn clone(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VTABLE)
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn host_index_search_equals_exact_search() {
    // Random unit vectors with a duplicated row (a tie broken by docid).
    let dim = 16;
    let mut state = 12345u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 2000) as f32 / 1000.0 - 1.0
    };
    let mut values: Vec<f32> = (0..300 * dim).map(|_| next()).collect();
    let dup: Vec<f32> = values[5 * dim..6 * dim].to_vec();
    values[77 * dim..78 * dim].copy_from_slice(&dup);
    let ids: Vec<String> = (0..300).map(|i| format!("d{i:03}")).collect();
    let corpus = Embeddings { ids: ids.clone(), values: values.clone(), dim };
    let queries =
        Embeddings { ids: vec!["q1".into(), "q2".into()], values: [dup.clone(), values[..dim].to_vec()].concat(), dim };
    let run = search_in_memory::<Flex>(&queries, &corpus, 10, &Default::default()).unwrap();
    for (qi, qid) in ["q1", "q2"].iter().enumerate() {
        let hits = corpus.search_one(&queries.values[qi * dim..(qi + 1) * dim], 10).unwrap();
        let want: Vec<&str> = run.get(*qid).unwrap().iter().map(|e| e.docid.as_str()).collect();
        let got: Vec<&str> = hits.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(got, want, "{qid}");
    }
    // The same index read from bytes, as the browser does.
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("embeddings.npy");
    let mut w = llmql_core::npy::NpyWriter::new(std::fs::File::create(&npy).unwrap(), dim).unwrap();
    for i in 0..300 {
        w.write_row(corpus.row(i)).unwrap();
    }
    w.finish().unwrap();
    let from_bytes =
        Embeddings::from_bytes(&std::fs::read(&npy).unwrap(), &ids.join("\n"), &npy, Path::new("ids.txt")).unwrap();
    assert_eq!(from_bytes.values, corpus.values);
    assert!(from_bytes.search_one(&[0.0; 3], 5).is_err(), "a wrong query dimension must be an error");
    let err = Embeddings::from_bytes(&std::fs::read(&npy).unwrap(), "d1\nd2", &npy, Path::new("ids.txt"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ids.txt") && err.contains("300 rows"), "{err}");
}
