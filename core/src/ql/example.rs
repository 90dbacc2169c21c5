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
use crate::template::TemplateParts;
use crate::tokenizer::TextTokenizer;
use crate::truncation::Truncation;

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
    /// Tokens cut from the prompt's conditioning text and from the target (see [`QlLengths`]).
    pub prompt_cut: usize,
    pub target_cut: usize,
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

/// Length limits of a stage-1 example and how its conditioning text is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QlLengths {
    /// The prompt (with BOS) has at most this many tokens.
    pub p_max_len: usize,
    /// The target (with its closing EOS) has at most this many tokens.
    pub q_max_len: usize,
    /// `Content` drops trailing words of the conditioning text so the instruction suffix
    /// survives; `Reference` keeps the first `p_max_len` tokens of the whole prompt string.
    pub truncation: Truncation,
}

impl QlLengths {
    pub fn new(p_max_len: usize, q_max_len: usize) -> Self {
        Self { p_max_len, q_max_len, truncation: Truncation::Content }
    }
}

/// Tokenizes `prefix + body + suffix` with special tokens, dropping trailing words of `body`
/// until it fits in `max_len` tokens. Errors when even an empty body does not fit.
/// Returns the ids and how many tokens were cut.
fn fit_prompt(tok: &TextTokenizer, prefix: &str, body: &str, suffix: &str, max_len: usize) -> Result<(Vec<u32>, usize)> {
    let words: Vec<&str> = body.split_whitespace().collect();
    let ids_for = |n: usize| tok.encode_full(&format!("{prefix}{}{suffix}", words[..n].join(" ")));
    // Untruncated: the text exactly as given (as the reference tokenizes it).
    let full = tok.encode_full(&format!("{prefix}{body}{suffix}"))?;
    if full.len() <= max_len {
        return Ok((full, 0));
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
    let ids = ids_for(lo)?;
    let cut = full.len().saturating_sub(ids.len());
    Ok((ids, cut))
}

/// The prompt as the reference cuts it: the first `max_len` tokens of the whole string.
fn cut_prompt(tok: &TextTokenizer, prefix: &str, body: &str, suffix: &str, max_len: usize) -> Result<(Vec<u32>, usize)> {
    let parts = TemplateParts { prefix: String::new(), content: format!("{prefix}{body}{suffix}"), suffix: String::new() };
    // `encode_input` appends EOS after `max_len` tokens: drop it (the separator is added by the caller).
    let mut t = tok.encode_input(&parts, max_len + 1, Truncation::Reference)?;
    t.ids.pop();
    Ok((t.ids, t.cut_tokens))
}

fn target_ids(tok: &TextTokenizer, text: &str, max_len: usize) -> Result<(Vec<u32>, usize)> {
    let mut ids = tok.encode_plain(text)?;
    let keep = max_len.saturating_sub(1);
    let cut = ids.len().saturating_sub(keep);
    ids.truncate(keep);
    ids.push(tok.eos_id);
    Ok((ids, cut))
}

/// A stage-1 example: `conditioning` (the passage for d2q, the query for q2d; already corrupted
/// when training with Input Corruption) in its direction's prompt, the separator, then `target`.
pub fn build_example(tok: &TextTokenizer, direction: Direction, conditioning: &str, target: &str, lengths: &QlLengths) -> Result<QlExample> {
    let (prefix, suffix) = match direction {
        Direction::D2q => (D2Q_PREFIX, D2Q_SUFFIX),
        Direction::Q2d => (Q2D_PREFIX, Q2D_SUFFIX),
    };
    let (mut ids, prompt_cut) = match lengths.truncation {
        Truncation::Content => fit_prompt(tok, prefix, conditioning, suffix, lengths.p_max_len)?,
        Truncation::Reference => cut_prompt(tok, prefix, conditioning, suffix, lengths.p_max_len)?,
    };
    let sep_pos = ids.len();
    ids.push(tok.eos_id);
    let (target_ids, target_cut) = target_ids(tok, target, lengths.q_max_len)?;
    ids.extend(target_ids);
    Ok(QlExample { input_ids: ids, sep_pos, direction, prompt_cut, target_cut })
}

/// A d2q example; `passage` is already corrupted when training with Input Corruption.
pub fn build_d2q(tok: &TextTokenizer, passage: &str, query: &str, p_max_len: usize, q_max_len: usize) -> Result<QlExample> {
    build_example(tok, Direction::D2q, passage, query, &QlLengths::new(p_max_len, q_max_len))
}

/// The mirror image: the query prompt generates the passage.
pub fn build_q2d(tok: &TextTokenizer, passage: &str, query: &str, p_max_len: usize, q_max_len: usize) -> Result<QlExample> {
    build_example(tok, Direction::Q2d, query, passage, &QlLengths::new(p_max_len, q_max_len))
}
