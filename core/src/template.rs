//! Input templates: how a query or a passage becomes the text the encoder reads.
//! `llmql` holds the reference implementation's instruction strings byte for byte.

/// The LLM-QL query instruction (followed by a space and the query).
pub const QUERY_PREFIX: &str =
    "Instruct: Given a web search query, retrieve the most relevant passage that answer the query.\nQuery: ";
pub const QUERY_SUFFIX: &str = "\nThe most relevant passage:";
/// The LLM-QL passage instruction (followed by a space, the title, a space and the text).
pub const PASSAGE_PREFIX: &str = "Instruct: Given a retrieved passage, summarize the passage.\nPassage: ";
pub const PASSAGE_SUFFIX: &str = "\nSummarization:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
        self.parts(Kind::Query, None, q).joined()
    }

    /// The encoder text for a passage (`title` may be empty).
    pub fn passage(&self, title: &str, text: &str) -> String {
        self.parts(Kind::Passage, Some(title), text).joined()
    }

    pub fn apply(&self, kind: Kind, title: Option<&str>, text: &str) -> String {
        self.parts(kind, title, text).joined()
    }

    /// The encoder text split into the instruction before the content, the content (the only
    /// part [`crate::truncation::Truncation::Content`] may cut) and the instruction after it;
    /// `prefix + content + suffix` is exactly the reference's string.
    pub fn parts(&self, kind: Kind, title: Option<&str>, text: &str) -> TemplateParts {
        let title = title.unwrap_or("");
        let (prefix, content, suffix) = match (self, kind) {
            // The reference's f-strings: `f'{prefix} {query.strip()}{post}'.strip()` and
            // `f'{prefix} {title.strip()} {text.strip()}{post}'.strip()`.
            (Template::Llmql, Kind::Query) => {
                (format!("{QUERY_PREFIX} "), text.trim().to_string(), QUERY_SUFFIX.to_string())
            }
            (Template::Llmql, Kind::Passage) => {
                (format!("{PASSAGE_PREFIX} "), format!("{} {}", title.trim(), text.trim()), PASSAGE_SUFFIX.to_string())
            }
            (Template::Repllama, Kind::Query) => ("query: ".to_string(), text.trim().to_string(), String::new()),
            (Template::Repllama, Kind::Passage) => (
                "passage: ".to_string(),
                format!("{} {}", title.trim(), text.trim()).trim_end().to_string(),
                String::new(),
            ),
            (Template::Raw, Kind::Query) => (String::new(), text.to_string(), String::new()),
            (Template::Raw, Kind::Passage) if title.is_empty() => (String::new(), text.to_string(), String::new()),
            (Template::Raw, Kind::Passage) => {
                (String::new(), format!("{title} {text}").trim().to_string(), String::new())
            }
        };
        let mut parts = TemplateParts { prefix, content, suffix };
        // `.strip()` of the whole string: only an empty content can leave outer whitespace.
        if parts.content.is_empty() && parts.suffix.is_empty() {
            parts.prefix = parts.prefix.trim_end().to_string();
        }
        parts
    }
}

/// An encoder input as instruction prefix, content and instruction suffix (see [`Template::parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateParts {
    pub prefix: String,
    pub content: String,
    pub suffix: String,
}

impl TemplateParts {
    /// The whole text.
    pub fn joined(&self) -> String {
        format!("{}{}{}", self.prefix, self.content, self.suffix)
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
        // Empty content: the whole string is stripped, as the reference's `.strip()` does.
        assert_eq!(Template::Repllama.query("  "), "query:");
        assert_eq!(Template::Repllama.passage("", ""), "passage:");
        assert_eq!(Template::Repllama.passage("", "x"), "passage:  x");
    }

    #[test]
    fn parts_join_to_the_text_and_isolate_the_content() {
        for t in [Template::Llmql, Template::Repllama, Template::Raw] {
            let p = t.parts(Kind::Passage, Some("T"), " body text ");
            assert_eq!(p.joined(), t.passage("T", " body text "));
            assert!(p.content.contains("body text"));
            let q = t.parts(Kind::Query, None, "what is rust");
            assert_eq!(q.joined(), t.query("what is rust"));
            assert_eq!(q.content, "what is rust");
        }
        let q = Template::Llmql.parts(Kind::Query, None, "q");
        assert!(q.prefix.starts_with("Instruct:") && q.suffix == QUERY_SUFFIX);
    }
}
