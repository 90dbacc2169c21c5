//! Stage-1 example layouts (the method's "Stage 1"):
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
use crate::truncation::{first_budget, prefix_bytes, Truncation};

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
/// Returns the ids and how many tokens were cut (a lower bound when the body is very long).
///
/// The work is bounded by `max_len`, not by the body: a long body is first read as a prefix of
/// whole words that surely holds more than `max_len` tokens (grown while it does not), and the
/// cut is searched within it; a body that fits is tokenized whole, exactly as given.
fn fit_prompt(
    tok: &TextTokenizer,
    prefix: &str,
    body: &str,
    suffix: &str,
    max_len: usize,
) -> Result<(Vec<u32>, usize)> {
    let mut budget = first_budget(max_len);
    while body.len() > budget {
        if let Some(found) = fit_prompt_prefix(tok, prefix, body, suffix, max_len, budget)? {
            return Ok(found);
        }
        budget = budget.saturating_mul(4);
    }
    fit_prompt_whole(tok, prefix, body, suffix, max_len)
}

/// [`fit_prompt`] on the first `budget` bytes of `body`: `None` when those bytes do not yet
/// overflow `max_len` tokens (so the cut may lie further on).
fn fit_prompt_prefix(
    tok: &TextTokenizer,
    prefix: &str,
    body: &str,
    suffix: &str,
    max_len: usize,
    budget: usize,
) -> Result<Option<(Vec<u32>, usize)>> {
    let head = prefix_bytes(body, budget);
    let mut words: Vec<&str> = head.split_whitespace().collect();
    // The last word of the prefix may go on past it: it is not a whole word.
    let partial = if body[head.len()..].starts_with(char::is_whitespace) || head.ends_with(char::is_whitespace) {
        None
    } else {
        words.pop()
    };
    let ids_for = |n: usize| tok.encode_full(&format!("{prefix}{}{suffix}", words[..n].join(" ")));
    let all = ids_for(words.len())?;
    let seen = if all.len() > max_len {
        all.len()
    } else {
        // Every whole word fits: does even the start of the next one overflow?
        let Some(p) = partial else { return Ok(None) };
        let sep = if words.is_empty() { "" } else { " " };
        let with = tok.encode_full(&format!("{prefix}{}{sep}{p}{suffix}", words.join(" ")))?;
        if with.len() <= max_len {
            return Ok(None);
        }
        with.len()
    };
    let lo = largest_fitting(&ids_for, words.len(), max_len)?;
    let ids = ids_for(lo)?;
    let cut = seen.saturating_sub(ids.len());
    Ok(Some((ids, cut)))
}

/// The largest `n <= words` with `ids_for(n).len() <= max_len` (token count grows with `n`); an
/// error when even `n = 0` (the instruction alone) does not fit.
fn largest_fitting(ids_for: &dyn Fn(usize) -> Result<Vec<u32>>, words: usize, max_len: usize) -> Result<usize> {
    let base = ids_for(0)?;
    if base.len() > max_len {
        return Err(Error::Other(format!(
            "the instruction alone takes {} tokens, more than the maximum prompt length {max_len}",
            base.len()
        )));
    }
    let (mut lo, mut hi) = (0usize, words);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if ids_for(mid)?.len() <= max_len {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// [`fit_prompt`] on the whole body (a body short enough to tokenize whole).
fn fit_prompt_whole(
    tok: &TextTokenizer,
    prefix: &str,
    body: &str,
    suffix: &str,
    max_len: usize,
) -> Result<(Vec<u32>, usize)> {
    let words: Vec<&str> = body.split_whitespace().collect();
    let ids_for = |n: usize| tok.encode_full(&format!("{prefix}{}{suffix}", words[..n].join(" ")));
    // Untruncated: the text exactly as given (as the reference tokenizes it).
    let full = tok.encode_full(&format!("{prefix}{body}{suffix}"))?;
    if full.len() <= max_len {
        return Ok((full, 0));
    }
    let lo = largest_fitting(&ids_for, words.len(), max_len)?;
    let ids = ids_for(lo)?;
    let cut = full.len().saturating_sub(ids.len());
    Ok((ids, cut))
}

/// The prompt as the reference cuts it: the first `max_len` tokens of the whole string.
fn cut_prompt(
    tok: &TextTokenizer,
    prefix: &str,
    body: &str,
    suffix: &str,
    max_len: usize,
) -> Result<(Vec<u32>, usize)> {
    let parts =
        TemplateParts { prefix: String::new(), content: format!("{prefix}{body}{suffix}"), suffix: String::new() };
    // `encode_input` appends EOS after `max_len` tokens: drop it (the separator is added by the caller).
    let mut t = tok.encode_input(&parts, max_len + 1, Truncation::Reference)?;
    t.ids.pop();
    Ok((t.ids, t.cut_tokens))
}

fn target_ids(tok: &TextTokenizer, text: &str, max_len: usize) -> Result<(Vec<u32>, usize)> {
    // Bounded: only a prefix of a long target (a q2d passage) is tokenized.
    let t = tok.leading_plain_tokens(text, max_len.saturating_sub(1))?;
    let mut ids = t.ids;
    ids.push(tok.eos_id);
    Ok((ids, t.cut_tokens))
}

/// A stage-1 example: `conditioning` (the passage for d2q, the query for q2d; already corrupted
/// when training with Input Corruption) in its direction's prompt, the separator, then `target`.
pub fn build_example(
    tok: &TextTokenizer,
    direction: Direction,
    conditioning: &str,
    target: &str,
    lengths: &QlLengths,
) -> Result<QlExample> {
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
pub fn build_d2q(
    tok: &TextTokenizer,
    passage: &str,
    query: &str,
    p_max_len: usize,
    q_max_len: usize,
) -> Result<QlExample> {
    build_example(tok, Direction::D2q, passage, query, &QlLengths::new(p_max_len, q_max_len))
}

/// The mirror image: the query prompt generates the passage.
pub fn build_q2d(
    tok: &TextTokenizer,
    passage: &str,
    query: &str,
    p_max_len: usize,
    q_max_len: usize,
) -> Result<QlExample> {
    build_example(tok, Direction::Q2d, query, passage, &QlLengths::new(p_max_len, q_max_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> TextTokenizer {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-llama");
        let config = crate::config::ModelConfig::from_file(&dir.join("config.json")).unwrap();
        TextTokenizer::from_dir(&dir, &config).unwrap()
    }

    #[test]
    fn bounded_fit_keeps_whole_word_results() {
        let tok = tiny();
        let words = ["river", "stone", "a", "mountain", "of", "glass", "x", "unbelievably", "ok"];
        for n in [0usize, 3, 40, 200, 700] {
            let body: Vec<&str> = (0..n).map(|i| words[i % words.len()]).collect();
            let body = body.join(if n % 2 == 0 { " " } else { "  \n " });
            for max_len in [24usize, 40, 64] {
                let whole = fit_prompt_whole(&tok, D2Q_PREFIX, &body, D2Q_SUFFIX, max_len);
                let fast = fit_prompt(&tok, D2Q_PREFIX, &body, D2Q_SUFFIX, max_len);
                match (whole, fast) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a.0, b.0, "{n} words, max {max_len}");
                        assert!(b.1 <= a.1 && (a.1 == 0) == (b.1 == 0), "cut {} vs {}", b.1, a.1);
                    }
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                    (a, b) => panic!("{a:?} vs {b:?}"),
                }
            }
        }
        // One word longer than any budget, and a long target: still bounded and correct.
        let huge = "y".repeat(3_000_000);
        let max = fit_prompt_whole(&tok, D2Q_PREFIX, "", D2Q_SUFFIX, 10_000).unwrap().0.len() + 4;
        let (ids, cut) = fit_prompt(&tok, D2Q_PREFIX, &format!("short {huge} tail"), D2Q_SUFFIX, max).unwrap();
        assert_eq!(ids, fit_prompt_whole(&tok, D2Q_PREFIX, "short", D2Q_SUFFIX, max).unwrap().0);
        assert!(cut > 0);
        let (t, tcut) = target_ids(&tok, &huge, 16).unwrap();
        assert_eq!(t.len(), 16);
        assert!(tcut > 0);
    }

    #[test]
    fn long_passages_cost_what_short_ones_cost() {
        let tok = tiny();
        let passage = "the quick brown fox jumps over the lazy dog ".repeat(200_000); // 8.8 MB
        let p_max = fit_prompt_whole(&tok, Q2D_PREFIX, "", Q2D_SUFFIX, 10_000).unwrap().0.len() + 20;
        let start = std::time::Instant::now();
        let e = build_example(&tok, Direction::D2q, &passage, "where is the fox", &QlLengths::new(p_max, 16)).unwrap();
        let q2d =
            build_example(&tok, Direction::Q2d, "where is the fox", &passage, &QlLengths::new(p_max, 16)).unwrap();
        assert!(e.sep_pos <= p_max && q2d.len() - q2d.sep_pos - 1 == 16);
        assert!(start.elapsed().as_secs_f64() < 5.0, "took {:?}", start.elapsed());
    }
}
