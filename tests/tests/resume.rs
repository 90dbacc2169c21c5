//! The shared training loop (`llmql_core::train::trainer`) driven directly, for both stages: a run
//! stopped after a step and resumed from its last checkpoint ends with the same weights, byte for
//! byte, as the same run uninterrupted (data order, example randomness, LoRA dropout, gradient
//! accumulation, gradient checkpointing, optimizer state). The CLI's kill-and-resume tests
//! (native-cli/tests/{ql_cli,train_cli}.rs) cover the same through `llmql ql-train` / `llmql train`.
#![cfg(feature = "flex")]
use burn::backend::{Autodiff, Flex};
use burn::tensor::DType;
use llmql_core::formats::{TevatronExample, TevatronPassage};
use llmql_core::lora::{attach_lora, LoraConfig};
use llmql_core::model::{DecoderModel, LoadOptions};
use llmql_core::train::checkpoint::list_checkpoints;
use llmql_core::train::data_parallel::Single;
use llmql_core::train::{train, ContrastiveConfig, ContrastiveStage, QlPair, QlStage, QlTrainConfig, Quiet};
use llmql_core::train::{TrainObserver, TrainRun, TrainSettings, Warmup};
use llmql_core::ModelSource;
use llmql_tests::fixture;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

type B = Autodiff<Flex>;

const WORDS: [&str; 8] = ["honey", "granite", "nile", "comet", "violin", "glacier", "tulip", "copper"];

/// Burn's RNG is one per backend, not per thread: the tests of this file run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Stops a run (as a kill would) right after step `0`, before that step's checkpoint is written.
struct StopAfter(usize);
impl TrainObserver for StopAfter {
    fn on_step(&mut self, step: usize) {
        if step == self.0 {
            panic!("stopping the run after step {step} (test)");
        }
    }
}

/// The merged weights of the newest checkpoint in `out`, and its step.
fn final_weights(out: &Path) -> (usize, Vec<u8>) {
    let (step, dir) = list_checkpoints(out).pop().expect("a checkpoint");
    (step, std::fs::read(dir.join("model.safetensors")).unwrap())
}

fn load(ck: &ModelSource, lm_head: bool) -> DecoderModel<B> {
    let opts = LoadOptions { dtype: DType::F32, lm_head, host_embeddings: false, compute_dtype: None };
    ck.load_model::<B>(opts, &Default::default()).unwrap()
}

/// Runs `train(out, resume, observer)` uninterrupted into `a`, stopped after `stop` steps into
/// `b`, then resumed in `b`; returns both final weights.
fn uninterrupted_and_resumed(
    stop: usize,
    train: impl Fn(&Path, bool, &mut dyn TrainObserver),
) -> [(usize, Vec<u8>); 2] {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    train(&a, false, &mut Quiet);
    let stopped = catch_unwind(AssertUnwindSafe(|| train(&b, false, &mut StopAfter(stop))));
    assert!(stopped.is_err(), "the run should have been stopped");
    let (saved, _) = final_weights(&b);
    assert!(saved < stop, "the stopped run saved checkpoint-{saved}, expected one before step {stop}");
    train(&b, true, &mut Quiet);
    let early = std::fs::read(a.join(format!("checkpoint-{saved}")).join("model.safetensors")).unwrap();
    assert!(early != final_weights(&a).1, "the weights did not change after step {saved}: the test proves nothing");
    [final_weights(&a), final_weights(&b)]
}

#[test]
fn stage1_resumed_run_equals_uninterrupted_run() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let pairs: Vec<QlPair> = (0..10)
        .map(|i| QlPair {
            passage: format!(
                "The {} is passage number {i}; it is about {} and more.",
                WORDS[i % 8],
                WORDS[(i + 3) % 8]
            ),
            query: format!("what about {}", WORDS[i % 8]),
        })
        .collect();
    let cfg = QlTrainConfig {
        p_max_len: 48,
        q_max_len: 16,
        q2d_ratio: 0.3,
        train: TrainSettings {
            learning_rate: 1e-3,
            num_train_epochs: 3,
            per_device_train_batch_size: 3,
            gradient_accumulation_steps: 2,
            warmup: Warmup::Ratio(0.2),
            seed: 7,
            logging_steps: 1,
            save_steps: 2,
            ..TrainSettings::stage1()
        },
        ..Default::default()
    };
    let [(sa, wa), (sb, wb)] = uninterrupted_and_resumed(3, |out, resume, obs| {
        let run = TrainRun { source: &ck.source_files(), out, resume };
        train(load(&ck, true), &mut QlStage::new(&ck.tokenizer, &pairs, &cfg), &run, obs, &Single).unwrap();
    });
    assert_eq!((sa, sb), (6, 6));
    assert!(wa == wb, "stage 1: resumed weights differ from the uninterrupted run");
}

#[test]
fn stage2_lora_resumed_run_equals_uninterrupted_run() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let passage = |i: usize| TevatronPassage {
        docid: format!("d{i}"),
        title: String::new(),
        text: format!("A passage about {} and {}.", WORDS[i % 8], WORDS[(i + 5) % 8]),
    };
    let examples: Vec<TevatronExample> = (0..8)
        .map(|i| TevatronExample {
            query_id: Some(format!("q{i}")),
            query: format!("tell me about {}", WORDS[i]),
            positive_passages: vec![passage(i)],
            negative_passages: (1..4).map(|k| passage(i + k)).collect(),
        })
        .collect();
    let lora = LoraConfig { r: 4, lora_alpha: 8.0, lora_dropout: 0.1, ..Default::default() };
    let cfg = ContrastiveConfig {
        train_group_size: 2,
        query_max_len: 64,
        passage_max_len: 96,
        temperature: 0.05,
        train: TrainSettings {
            learning_rate: 1e-3,
            num_train_epochs: 3,
            per_device_train_batch_size: 2,
            gradient_accumulation_steps: 2,
            warmup: Warmup::Steps(1),
            seed: 11,
            logging_steps: 1,
            save_steps: 2,
            lora: Some(lora.clone()),
            grad_checkpoint: true,
            ..TrainSettings::stage2()
        },
        ..Default::default()
    };
    let [(sa, wa), (sb, wb)] = uninterrupted_and_resumed(5, |out, resume, obs| {
        let run = TrainRun { source: &ck.source_files(), out, resume };
        let model = attach_lora(load(&ck, false), &lora, cfg.train.seed).unwrap();
        train(model, &mut ContrastiveStage::new(&ck.tokenizer, &examples, &cfg), &run, obs, &Single).unwrap();
    });
    assert_eq!((sa, sb), (6, 6));
    assert!(wa == wb, "stage 2: resumed weights differ from the uninterrupted run");
}
