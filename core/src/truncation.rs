//! Truncation: how an input longer than its length limit is cut, and a count of what was cut.
//!
//! The reference (Tevatron, LLM-QL) tokenizes the whole templated string and keeps its first
//! `max_len - 1` tokens before appending EOS. With instruction templates that is harmful: the
//! `llmql` query template alone costs ~29 SmolLM2 tokens, so a 32-token limit cuts every query's
//! words *and* the instruction suffix, and the vector is pooled from an EOS placed in the middle of
//! the text. [`Truncation::Content`] (our default) cuts only the content — the query or passage
//! text — and keeps the instruction prefix, the instruction suffix and then EOS.
//! [`Truncation::Reference`] keeps the reference's whole-string cut, for bit-exact reproduction
//! of released checkpoints. Texts that fit are tokenized identically by both.
//!
//! The work is bounded by the limit, not by the text: a text is tokenized from a prefix of its
//! content that surely holds more tokens than are kept (grown when it does not), so a 20 MB line
//! costs what a long passage costs.
use crate::error::Result;
use crate::template::TemplateParts;
use crate::tokenizer::TextTokenizer;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Truncation {
    /// Cut the content; keep the template's prefix and suffix, then EOS (default).
    #[default]
    Content,
    /// The reference's cut: the first `max_len - 1` tokens of the whole string, then EOS.
    Reference,
}

impl std::str::FromStr for Truncation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "content" => Ok(Truncation::Content),
            "reference" => Ok(Truncation::Reference),
            o => Err(format!("unknown truncation {o:?} (expected content or reference)")),
        }
    }
}

impl Truncation {
    pub fn name(&self) -> &'static str {
        match self {
            Truncation::Content => "content",
            Truncation::Reference => "reference",
        }
    }
}

/// Token ids of one input and how many of its tokens were cut (a lower bound when only a prefix
/// of a very long text was read: at least a few thousand bytes beyond what is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    pub ids: Vec<u32>,
    pub cut_tokens: usize,
}

impl Tokenized {
    /// The input's length before the cut (with EOS).
    pub fn full_len(&self) -> usize {
        self.ids.len() + self.cut_tokens
    }
}

/// Counts of texts seen and cut, shared by threads; [`TruncationStats::log`] reports them.
#[derive(Debug, Default)]
pub struct TruncationStats {
    texts: AtomicUsize,
    cut: AtomicUsize,
    max_cut: AtomicUsize,
    tokens: AtomicUsize,
    max_len: AtomicUsize,
}

impl TruncationStats {
    /// One text of `full_len` tokens before the cut, of which `cut_tokens` were cut.
    pub fn record(&self, full_len: usize, cut_tokens: usize) {
        self.texts.fetch_add(1, Ordering::Relaxed);
        self.tokens.fetch_add(full_len, Ordering::Relaxed);
        self.max_len.fetch_max(full_len, Ordering::Relaxed);
        if cut_tokens > 0 {
            self.cut.fetch_add(1, Ordering::Relaxed);
            self.max_cut.fetch_max(cut_tokens, Ordering::Relaxed);
        }
    }

    /// `(texts, texts cut, most tokens cut from one text)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.texts.load(Ordering::Relaxed), self.cut.load(Ordering::Relaxed), self.max_cut.load(Ordering::Relaxed))
    }

    /// Logs `what` (e.g. "passages (max 192 tokens)"): how many texts were cut and by how much,
    /// and the texts' lengths before any cut (to choose a limit by).
    pub fn log(&self, what: &str) {
        let (n, cut, max) = self.counts();
        if n == 0 {
            return;
        }
        let lengths = format!(
            "uncut lengths: mean {:.0}, longest {} tokens",
            self.tokens.load(Ordering::Relaxed) as f64 / n.max(1) as f64,
            self.max_len.load(Ordering::Relaxed)
        );
        if cut == 0 {
            tracing::info!("truncation: none of {n} {what} was cut ({lengths})");
        } else {
            tracing::warn!(
                "truncation: {cut} of {n} {what} ({:.1}%) were cut, by up to {max} tokens ({lengths})",
                100.0 * cut as f64 / n.max(1) as f64
            );
        }
    }
}

/// The first bytes of `s` (at a char boundary), at most `n`.
pub(crate) fn prefix_bytes(s: &str, n: usize) -> &str {
    if n >= s.len() {
        return s;
    }
    let mut k = n;
    while !s.is_char_boundary(k) {
        k -= 1;
    }
    &s[..k]
}

/// Bytes of content read first for a limit of `max_len` tokens; doubled while too few.
pub(crate) fn first_budget(max_len: usize) -> usize {
    max_len.saturating_mul(16).max(1024)
}

/// Tokens that must stay beyond the kept ones when only a prefix of the text was read, so that the
/// kept tokens are those the whole text would give.
pub(crate) const MARGIN: usize = 8;

impl TextTokenizer {
    /// An encoder input: `parts` with the tokenizer's special tokens, cut to `max_len - 1` tokens
    /// as `mode` says, then the EOS id.
    pub fn encode_input(&self, parts: &TemplateParts, max_len: usize, mode: Truncation) -> Result<Tokenized> {
        let keep = max_len.saturating_sub(1);
        let mut budget = first_budget(max_len);
        loop {
            let bounded = match mode {
                Truncation::Content => parts.content.len() > budget,
                Truncation::Reference => parts.prefix.len() + parts.content.len() + parts.suffix.len() > budget,
            };
            let out = match mode {
                Truncation::Content => {
                    let content = prefix_bytes(&parts.content, budget);
                    self.cut_content(&parts.prefix, content, &parts.suffix, keep, bounded)?
                }
                Truncation::Reference => {
                    let whole = parts.joined();
                    self.cut_whole(prefix_bytes(&whole, budget), keep, bounded)?
                }
            };
            if let Some(mut t) = out {
                t.ids.push(self.eos_id);
                return Ok(t);
            }
            // Too little of the text was read to know the kept tokens: read more.
            budget = budget.saturating_mul(4);
        }
    }

    /// The reference's cut of `text` (already a prefix of the input when `bounded`): `None` when
    /// `bounded` and the prefix holds too few tokens to be sure of the kept ones.
    fn cut_whole(&self, text: &str, keep: usize, bounded: bool) -> Result<Option<Tokenized>> {
        let enc = self.encode_raw(text, false)?;
        let added = self.added_special_tokens();
        let room = keep.saturating_sub(added);
        let n = enc.get_ids().len();
        if bounded && n < room + MARGIN {
            return Ok(None);
        }
        if n + added <= keep {
            return Ok(Some(Tokenized { ids: self.encode_raw(text, true)?.get_ids().to_vec(), cut_tokens: 0 }));
        }
        // As `tokenizers` truncates: the text's tokens first, leaving room for the special tokens
        // the post-processor adds, then post-processing.
        let mut enc = enc;
        enc.truncate(room, 0, tokenizers::TruncationDirection::Right);
        let enc = self.tokenizer.post_process(enc, None, true).map_err(|e| self.error(e.to_string()))?;
        Ok(Some(Tokenized { ids: enc.get_ids().to_vec(), cut_tokens: n - room }))
    }

    /// Content truncation: keeps the tokens wholly inside `prefix` and those from `suffix` on
    /// (with the special tokens the post-processor adds), and as many content tokens as fit.
    fn cut_content(
        &self,
        prefix: &str,
        content: &str,
        suffix: &str,
        keep: usize,
        bounded: bool,
    ) -> Result<Option<Tokenized>> {
        let text = format!("{prefix}{content}{suffix}");
        let enc = self.encode_raw(&text, true)?;
        let ids = enc.get_ids();
        let n = ids.len();
        if n <= keep && !bounded {
            return Ok(Some(Tokenized { ids: ids.to_vec(), cut_tokens: 0 }));
        }
        let special = enc.get_special_tokens_mask();
        let offsets = enc.get_offsets();
        let content_start = prefix.len();
        let suffix_start = prefix.len() + content.len();
        // Tail: the suffix's tokens and trailing special tokens.
        let mut tail = n;
        while tail > 0 && (special[tail - 1] == 1 || offsets[tail - 1].0 >= suffix_start) {
            tail -= 1;
        }
        // Head: leading special tokens and tokens wholly inside the prefix.
        let mut head = 0;
        while head < tail && (special[head] == 1 || offsets[head].1 <= content_start) {
            head += 1;
        }
        let fixed = head + (n - tail);
        if fixed > keep {
            return Err(self.error(format!(
                "the template alone takes {fixed} tokens, more than the length limit allows ({} with EOS); \
                 raise the limit or use --truncation reference",
                keep + 1
            )));
        }
        let content_tokens = tail - head;
        let kept = (keep - fixed).min(content_tokens);
        if bounded && content_tokens < kept + MARGIN {
            return Ok(None);
        }
        let mut out = ids[..head + kept].to_vec();
        out.extend_from_slice(&ids[tail..]);
        Ok(Some(Tokenized { ids: out, cut_tokens: content_tokens - kept }))
    }

    /// The first `keep` tokens of `text` without special tokens, and how many were cut (a lower
    /// bound for a very long text), tokenizing only a prefix of the text that surely holds them.
    pub fn leading_plain_tokens(&self, text: &str, keep: usize) -> Result<Tokenized> {
        let mut budget = first_budget(keep);
        while text.len() > budget {
            let ids = self.encode_raw(prefix_bytes(text, budget), false)?.get_ids().to_vec();
            if ids.len() >= keep + MARGIN {
                return Ok(Tokenized { ids: ids[..keep].to_vec(), cut_tokens: ids.len() - keep });
            }
            budget = budget.saturating_mul(4);
        }
        let mut ids = self.encode_raw(text, false)?.get_ids().to_vec();
        let cut = ids.len().saturating_sub(keep);
        ids.truncate(keep);
        Ok(Tokenized { ids, cut_tokens: cut })
    }

    /// How many special tokens the post-processor adds to a single sequence (BOS, ...).
    pub fn added_special_tokens(&self) -> usize {
        self.tokenizer.get_post_processor().map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_bytes_respects_char_boundaries() {
        assert_eq!(prefix_bytes("héllo", 2), "h");
        assert_eq!(prefix_bytes("héllo", 3), "hé");
        assert_eq!(prefix_bytes("abc", 10), "abc");
    }

    #[test]
    fn stats_count_cut_texts() {
        let s = TruncationStats::default();
        s.record(10, 0);
        s.record(30, 5);
        s.record(20, 2);
        assert_eq!(s.counts(), (3, 2, 5));
    }
}
