//! Training loops and their pieces: schedule, global-norm clipping, checkpoints with resumable state.
pub mod checkpoint;
pub mod clip;
pub mod collapse;
pub mod common;
pub mod contrastive;
pub mod data_parallel;
pub mod layer_checkpoint;
pub mod negatives;
pub mod ql_train;
pub mod schedule;

pub use ql_train::{ql_train, QlPair, QlTrainConfig};
pub use schedule::LinearSchedule;
