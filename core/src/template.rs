//! Input templates: how a query or a passage becomes the text the encoder reads.
//! `llmql` holds the reference implementation's instruction strings byte for byte.

/// The LLM-QL query instruction (followed by a space and the query).
pub const QUERY_PREFIX: &str =
    "Instruct: Given a web search query, retrieve the most relevant passage that answer the query.\nQuery: ";
pub const QUERY_SUFFIX: &str = "\nThe most relevant passage:";
/// The LLM-QL passage instruction (followed by a space, the title, a space and the text).
pub const PASSAGE_PREFIX: &str = "Instruct: Given a retrieved passage, summarize the passage.\nPassage: ";
pub const PASSAGE_SUFFIX: &str = "\nSummarization:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// The reference's instruction prompts (default).
    Llmql,
    /// RepLLaMA's `query: {q}` / `passage: {title} {text}`.
    Repllama,
    /// The text itself (`{title} {text}` for a titled passage).
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Query,
    Passage,
}

impl std::str::FromStr for Template {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "llmql" => Ok(Template::Llmql),
            "repllama" => Ok(Template::Repllama),
            "raw" => Ok(Template::Raw),
            other => Err(format!("unknown template {other:?} (expected llmql, repllama or raw)")),
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "query" => Ok(Kind::Query),
            "passage" => Ok(Kind::Passage),
            other => Err(format!("unknown kind {other:?} (expected query or passage)")),
        }
    }
}

impl Template {
    pub fn name(&self) -> &'static str {
        match self {
            Template::Llmql => "llmql",
            Template::Repllama => "repllama",
            Template::Raw => "raw",
        }
    }

    /// The encoder text for a query.
    pub fn query(&self, q: &str) -> String {
        match self {
            Template::Llmql => format!("{QUERY_PREFIX} {}{QUERY_SUFFIX}", q.trim()).trim().to_string(),
            Template::Repllama => format!("query: {}", q.trim()).trim().to_string(),
            Template::Raw => q.to_string(),
        }
    }

    /// The encoder text for a passage (`title` may be empty).
    pub fn passage(&self, title: &str, text: &str) -> String {
        match self {
            Template::Llmql => format!("{PASSAGE_PREFIX} {} {}{PASSAGE_SUFFIX}", title.trim(), text.trim())
                .trim()
                .to_string(),
            Template::Repllama => format!("passage: {} {}", title.trim(), text.trim()).trim().to_string(),
            Template::Raw => {
                if title.is_empty() {
                    text.to_string()
                } else {
                    format!("{title} {text}").trim().to_string()
                }
            }
        }
    }

    pub fn apply(&self, kind: Kind, title: Option<&str>, text: &str) -> String {
        match kind {
            Kind::Query => self.query(text),
            Kind::Passage => self.passage(title.unwrap_or(""), text),
        }
    }
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Passage => "passage",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_strings_byte_for_byte() {
        assert_eq!(
            Template::Llmql.query(" what is rust "),
            "Instruct: Given a web search query, retrieve the most relevant passage that answer the query.\nQuery:  what is rust\nThe most relevant passage:"
        );
        assert_eq!(
            Template::Llmql.passage("Title", "Body."),
            "Instruct: Given a retrieved passage, summarize the passage.\nPassage:  Title Body.\nSummarization:"
        );
        // Empty title: a third space, as the reference's f-string gives.
        assert_eq!(
            Template::Llmql.passage("", "Body."),
            "Instruct: Given a retrieved passage, summarize the passage.\nPassage:   Body.\nSummarization:"
        );
        assert_eq!(Template::Repllama.query("q"), "query: q");
        assert_eq!(Template::Repllama.passage("T", "x"), "passage: T x");
        assert_eq!(Template::Raw.passage("", "x"), "x");
        assert_eq!(Template::Raw.passage("T", "x"), "T x");
    }
}
