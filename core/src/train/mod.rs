//! Training: one loop for both stages ([`trainer`]) with its shared settings ([`settings`]) and
//! progress callbacks ([`observer`]); the stages ([`ql_train`] for stage 1, [`contrastive`] for
//! stage 2); and the loop's pieces: schedule, global-norm clipping, gradient checkpointing, data
//! parallelism, the optimizer ([`adamw`]), `checkpoint-N` folders with resumable state.
pub mod adamw;
pub mod checkpoint;
pub mod clip;
pub mod collapse;
pub mod common;
pub mod contrastive;
pub mod data_parallel;
pub mod grad_checkpoint;
pub mod negatives;
pub mod observer;
pub mod ql_train;
pub mod schedule;
pub mod settings;
pub mod trainer;

pub use contrastive::{ContrastiveConfig, ContrastiveStage};
pub use observer::{BatchInputs, Quiet, TrainObserver};
pub use ql_train::{QlPair, QlStage, QlTrainConfig};
pub use schedule::LinearSchedule;
pub use settings::{InvalidSetting, TrainSettings, Warmup};
pub use trainer::{train, TrainRun, TrainStage};
