//! LLM-QL stage 1: query-likelihood modeling (Attention Stop + Input Corruption), QL ranking, and
//! query generation with the stage-1 model.
pub mod attention_stop;
pub mod corruption;
pub mod example;
pub mod generate;
pub mod loss;
pub mod score;

pub use attention_stop::attention_stop_mask;
pub use corruption::corrupt_words;
pub use example::{build_d2q, build_q2d, passage_text, Direction, LossOn, QlExample};
pub use generate::{d2q_prompt, generate, GenerateOptions, Generated, Request, Sampling};
pub use loss::{ql_loss, target_log_probs, QlBatch};
pub use score::{cached_scores, full_sequence_scores, ql_scores, QlScoreOptions};
