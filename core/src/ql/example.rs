//! Stage-1 example layouts (METHOD.md "Stage 1"):
//!
//! d2q: `[BOS] D2Q_PREFIX + passage + D2Q_SUFFIX` `[EOS = separator]` `query tokens [EOS]`
//! q2d: `[BOS] Q2D_PREFIX + query + Q2D_SUFFIX` `[EOS = separator]` `passage tokens [EOS]`
//!
//! The conditioning text is truncated (whole words) so the instruction suffix always survives.
//! In both directions the prompt (with BOS) has at most `p_max_len` tokens and the target (with
//! its closing EOS) at most `q_max_len` tokens — as in the reference, whose prompt is always padded
//! to `p_max_len` whatever the direction.
use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;

pub const D2Q_PREFIX: &str = "Instruct: Given a retrieved passage, summarize the passage.\nPassage: ";
/// Stage 1 keeps the trailing space after "Summarization:".
pub const D2Q_SUFFIX: &str = "\nSummarization: ";
pub const Q2D_PREFIX: &str =
    "Instruct: Given a web search query, retrieve the most relevant passage that answer the query.\nQuery: ";
pub const Q2D_SUFFIX: &str = "\nThe most relevant passage: ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    D2q,
    Q2d,
}

/// Which next-token predictions the loss counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossOn {
    /// The reference: every real token after the first (prompt, separator, target).
    All,
    /// Only the target tokens and the closing EOS.
    Query,
}

impl std::str::FromStr for LossOn {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "all" => Ok(LossOn::All),
            "query" => Ok(LossOn::Query),
            o => Err(format!("unknown --loss-on {o:?} (expected all or query)")),
        }
    }
}

/// `{title} {text}` trimmed (just the text when there is no title).
pub fn passage_text(title: Option<&str>, text: &str) -> String {
    format!("{} {}", title.unwrap_or(""), text).trim().to_string()
}

#[derive(Debug, Clone, PartialEq)]
pub struct QlExample {
    pub input_ids: Vec<u32>,
    /// Index of the separator (the prompt's length).
    pub sep_pos: usize,
    pub direction: Direction,
}

impl QlExample {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Positions `t` whose token is a target (predicted from position `t - 1`).
    pub fn target_positions(&self, on: LossOn) -> std::ops::Range<usize> {
        match on {
            LossOn::All => 1..self.len(),
            LossOn::Query => self.sep_pos + 1..self.len(),
        }
    }
}

/// Tokenizes `prefix + body + suffix` with special tokens, dropping trailing words of `body`
/// until it fits in `max_len` tokens. Errors when even an empty body does not fit.
fn fit_prompt(tok: &TextTokenizer, prefix: &str, body: &str, suffix: &str, max_len: usize) -> Result<Vec<u32>> {
    let words: Vec<&str> = body.split_whitespace().collect();
    let ids_for = |n: usize| tok.encode_truncated(&format!("{prefix}{}{suffix}", words[..n].join(" ")), usize::MAX);
    // Untruncated: the text exactly as given (as the reference tokenizes it).
    let full = tok.encode_truncated(&format!("{prefix}{body}{suffix}"), usize::MAX)?;
    if full.len() <= max_len {
        return Ok(full);
    }
    // Largest n with len(ids_for(n)) <= max_len (token count grows with n).
    let (mut lo, mut hi) = (0usize, words.len());
    let base = ids_for(0)?;
    if base.len() > max_len {
        return Err(Error::Other(format!(
            "the instruction alone takes {} tokens, more than the maximum prompt length {max_len}",
            base.len()
        )));
    }
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if ids_for(mid)?.len() <= max_len {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    ids_for(lo)
}

fn target_ids(tok: &TextTokenizer, text: &str, max_len: usize) -> Result<Vec<u32>> {
    let mut ids = tok.encode_plain(text)?;
    ids.truncate(max_len.saturating_sub(1));
    ids.push(tok.eos_id);
    Ok(ids)
}

/// A d2q example; `passage` is already corrupted when training with Input Corruption.
pub fn build_d2q(tok: &TextTokenizer, passage: &str, query: &str, p_max_len: usize, q_max_len: usize) -> Result<QlExample> {
    let mut ids = fit_prompt(tok, D2Q_PREFIX, passage, D2Q_SUFFIX, p_max_len)?;
    let sep_pos = ids.len();
    ids.push(tok.eos_id);
    ids.extend(target_ids(tok, query, q_max_len)?);
    Ok(QlExample { input_ids: ids, sep_pos, direction: Direction::D2q })
}

/// The mirror image: the query prompt generates the passage.
pub fn build_q2d(tok: &TextTokenizer, passage: &str, query: &str, p_max_len: usize, q_max_len: usize) -> Result<QlExample> {
    let mut ids = fit_prompt(tok, Q2D_PREFIX, query, Q2D_SUFFIX, p_max_len)?;
    let sep_pos = ids.len();
    ids.push(tok.eos_id);
    ids.extend(target_ids(tok, passage, q_max_len)?);
    Ok(QlExample { input_ids: ids, sep_pos, direction: Direction::Q2d })
}
