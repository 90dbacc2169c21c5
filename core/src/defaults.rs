//! Every default of how text becomes model input, defined once: the length limits, template,
//! truncation, pooling and normalisation that `encode`, `train`, `ql-train`, `rerank`,
//! `generate-queries`, `serve`, `export-web`, the browser encoder (`llmql-wasm`) and the quickstart
//! use when they are not told otherwise, and when the model or adapter they load records no settings
//! of its own ([`crate::trained_with`]).
//!
//! There are two kinds of length limit, as in the reference implementation:
//! - the **dense encoder's** (stage 2, Tevatron's `--query_max_len` / `--passage_max_len`): the
//!   templated query or passage with its appended EOS, one limit per [`Kind`];
//! - **query likelihood's** (stage 1 and QL ranking, the reference's `--p_max_len` / `--q_max_len`):
//!   the document prompt and the query that follows its separator. Its defaults are the
//!   reference's stage-1 command line (200 and 200: `../shared/seeds/`, "QL Modeling").
use crate::pooling::Pooling;
use crate::template::{Kind, Template};
use crate::truncation::Truncation;

/// Query length limit of the dense encoder (tokens, with EOS). Measured with SmolLM2's tokenizer:
/// the `llmql` query template alone takes 29 tokens; the quickstart's queries take 34-46 in it, the
/// medical collection's up to 52 (tests/tests/truncation.rs keeps every fixture query whole at this
/// limit).
pub const QUERY_MAX_LEN: usize = 64;
/// Passage length limit of the dense encoder (tokens, with EOS): the `llmql` passage template takes
/// ~20 tokens; the quickstart's passages take 94-142 in it; longer passages lose their end (never
/// the template's suffix, see [`crate::truncation`]).
pub const PASSAGE_MAX_LEN: usize = 192;
/// The input template (the reference's instructions).
pub const TEMPLATE: Template = Template::Llmql;
/// How an input longer than its limit is cut.
pub const TRUNCATION: Truncation = Truncation::Content;
/// Pooling of the dense encoder (the EOS token's hidden state, as LLM-QL and RepLLaMA).
pub const POOLING: Pooling = Pooling::Eos;
/// Whether embeddings are L2-normalised (the reference passes `--normalize`).
pub const NORMALIZE: bool = true;
/// Document prompt length limit of query likelihood (tokens, BOS included).
pub const QL_PASSAGE_MAX_LEN: usize = 200;
/// Query length limit of query likelihood (tokens, the closing EOS included).
pub const QL_QUERY_MAX_LEN: usize = 200;

/// The dense encoder's length limit for `kind`.
pub fn max_len(kind: Kind) -> usize {
    match kind {
        Kind::Query => QUERY_MAX_LEN,
        Kind::Passage => PASSAGE_MAX_LEN,
    }
}
