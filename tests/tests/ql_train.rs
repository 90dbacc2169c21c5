//! Stage-1 training on the fixture collection with a tiny checkpoint: the loss goes down, a NaN
//! loss stops the run with the last good checkpoint intact. (Resume after an abrupt kill is tested
//! end to end in native-cli/tests/ql_cli.rs.)
#![cfg(feature = "flex")]
use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::tensor::DType;
use llmql_core::formats::read_tevatron;
use llmql_core::model::LoadOptions;
use llmql_core::ql::example::passage_text;
use llmql_core::train::data_parallel::Single;
use llmql_core::train::{train, QlPair, QlStage, QlTrainConfig, Quiet, TrainRun, TrainSettings, Warmup};
use llmql_core::ModelSource;
use llmql_tests::fixture;

type B = Autodiff<Flex>;

/// (query, positive passage) pairs from the fixture collection's training qrels.
pub fn fixture_pairs() -> Vec<QlPair> {
    let coll = fixture("collection");
    let corpus: std::collections::HashMap<String, String> =
        llmql_core::records::read_records(&coll.join("corpus.jsonl"))
            .unwrap()
            .into_iter()
            .map(|r| (r.id.clone(), passage_text(r.title.as_deref(), &r.text)))
            .collect();
    let queries: std::collections::HashMap<String, String> =
        llmql_core::records::read_records(&coll.join("queries.jsonl"))
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.text))
            .collect();
    let qrels = llmql_core::trec::read_qrels(&coll.join("qrels/train.tsv")).unwrap();
    let mut pairs = Vec::new();
    for (q, docs) in qrels {
        for (d, rel) in docs {
            if rel > 0 {
                pairs.push(QlPair { passage: corpus[&d].clone(), query: queries[&q].clone() });
            }
        }
    }
    assert!(pairs.len() >= 8);
    let _ = read_tevatron; // the CLI reads Tevatron jsonl; here pairs come straight from qrels
    pairs
}

fn cfg() -> QlTrainConfig {
    QlTrainConfig {
        p_max_len: 96,
        q_max_len: 24,
        train: TrainSettings {
            learning_rate: 3e-3,
            num_train_epochs: 6,
            per_device_train_batch_size: 4,
            warmup: Warmup::Ratio(0.1),
            logging_steps: 1,
            save_steps: 0,
            ..TrainSettings::stage1()
        },
        ..Default::default()
    }
}

#[test]
fn loss_goes_down() {
    let dir = tempfile::tempdir().unwrap();
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let device = Default::default();
    let model = ck
        .load_model::<B>(
            LoadOptions { dtype: DType::F32, lm_head: true, host_embeddings: false, compute_dtype: None },
            &device,
        )
        .unwrap();
    let pairs = fixture_pairs();
    let c = cfg();
    train(
        model,
        &mut QlStage::new(&ck.tokenizer, &pairs, &c),
        &TrainRun { source: &ck.source_files(), out: dir.path(), resume: false },
        &mut Quiet,
        &Single,
    )
    .unwrap();
    // The final checkpoint holds the log; it loads as a plain HF folder.
    let (_, last) = llmql_core::train::checkpoint::list_checkpoints(dir.path()).pop().unwrap();
    let state = llmql_core::train::checkpoint::read_state(&last).unwrap();
    let losses: Vec<f64> = state.log_history.iter().map(|e| e.loss).collect();
    assert!(losses.len() >= 12, "{losses:?}");
    let first: f64 = losses[..3].iter().sum::<f64>() / 3.0;
    let last_l: f64 = losses[losses.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(last_l < first - 0.5, "loss did not go down: {first} -> {last_l} ({losses:?})");
    let reloaded = ModelSource::open(&last).unwrap();
    assert_eq!(reloaded.config.num_hidden_layers, 2);
}

#[test]
fn nan_loss_stops_with_last_good_checkpoint_intact() {
    let dir = tempfile::tempdir().unwrap();
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let device = Default::default();
    let model = ck
        .load_model::<B>(
            LoadOptions { dtype: DType::F32, lm_head: true, host_embeddings: false, compute_dtype: None },
            &device,
        )
        .unwrap();
    let pairs = fixture_pairs();
    let mut c = cfg();
    c.train.max_steps = Some(2);
    c.train.save_steps = 1;
    let model = train(
        model,
        &mut QlStage::new(&ck.tokenizer, &pairs, &c),
        &TrainRun { source: &ck.source_files(), out: dir.path(), resume: false },
        &mut Quiet,
        &Single,
    )
    .unwrap();
    // Poison the output head: the next loss is NaN.
    let mut model = model;
    let head = model.lm_head.as_mut().unwrap();
    let w = head.weight.val();
    let dims = w.dims();
    head.weight = Param::from_tensor(w.slice_fill([0..dims[0], 0..1], f32::NAN).detach());
    let mut c2 = c.clone();
    c2.train.save_steps = 1;
    c2.train.max_steps = Some(4);
    let err = train(
        model,
        &mut QlStage::new(&ck.tokenizer, &pairs, &c2),
        &TrainRun { source: &ck.source_files(), out: dir.path(), resume: false },
        &mut Quiet,
        &Single,
    )
    .expect_err("a NaN loss must stop training")
    .to_string();
    assert!(err.contains("NaN") && err.contains("checkpoint-2"), "{err}");
    // The last good checkpoint is intact and finite.
    let ck2 = ModelSource::open(&dir.path().join("checkpoint-2")).unwrap();
    let (vals, _) = ck2.weights.read_f32("lm_head.weight").unwrap();
    assert!(vals.iter().all(|v| v.is_finite()));
    assert!(!dir.path().join("checkpoint-3").exists());
}

/// As in the HF Trainer, `max_steps` overrides the epoch count: with more steps than one epoch
/// has, the data is cycled and exactly `max_steps` optimizer steps run (it used to stop at the
/// epochs' end).
#[test]
fn max_steps_beyond_the_epochs_trains_exactly_max_steps() {
    let dir = tempfile::tempdir().unwrap();
    let ck = ModelSource::open(&fixture("tiny-llama")).unwrap();
    let model = ck
        .load_model::<B>(
            LoadOptions { dtype: DType::F32, lm_head: true, host_embeddings: false, compute_dtype: None },
            &Default::default(),
        )
        .unwrap();
    let pairs = fixture_pairs();
    let mut c = cfg();
    c.train.num_train_epochs = 1;
    c.train.per_device_train_batch_size = pairs.len().div_ceil(2); // 2 steps an epoch
    c.train.max_steps = Some(5);
    c.train.save_steps = 0;
    struct Count(usize);
    impl llmql_core::train::TrainObserver for Count {
        fn on_step(&mut self, _step: usize) {
            self.0 += 1;
        }
    }
    let mut steps = Count(0);
    train(
        model,
        &mut QlStage::new(&ck.tokenizer, &pairs, &c),
        &TrainRun { source: &ck.source_files(), out: dir.path(), resume: false },
        &mut steps,
        &Single,
    )
    .unwrap();
    assert_eq!(steps.0, 5);
    let (_, last) = llmql_core::train::checkpoint::list_checkpoints(dir.path()).pop().unwrap();
    let state = llmql_core::train::checkpoint::read_state(&last).unwrap();
    assert_eq!(state.global_step, 5);
    assert!((state.epoch - 2.5).abs() < 1e-9, "{}", state.epoch);
}
