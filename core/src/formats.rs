//! Loaders for the formats retrieval users have, every error naming file and line:
//! - BEIR folders: `corpus.jsonl`, `queries.jsonl`, `qrels/{split}.tsv` ([`BeirPaths`], [`load_beir`]);
//! - MS MARCO tsv: `collection.tsv` (`pid\ttext`) and queries (`qid\ttext`) ([`RecordReader::open_tsv`]);
//! - "text files" of either kind, chosen by extension (`.jsonl` records or `.tsv` `id\ttext`)
//!   ([`open_text_records`], [`read_text_records`]);
//! - Tevatron training data, one JSON object a line ([`TevatronExample`], [`TevatronReader`],
//!   [`write_tevatron`]).
use crate::error::{Error, Result};
use crate::records::{LineReader, RecordReader, TextRecord};
use crate::trec::Qrels;
use serde::{Deserialize, Deserializer, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// tsv `id\ttext`

/// Parses one `id\ttext` line (MS MARCO `collection.tsv` / `queries.*.tsv`). Exactly two
/// tab-separated fields, so a three-column file (say `id\ttext\ttitle`) is refused rather than
/// read with the title glued to the text. A trailing `\r` is dropped. `line` is 1-based.
pub fn parse_tsv_record(s: &str, path: &Path, line: usize) -> Result<TextRecord> {
    let s = s.strip_suffix('\r').unwrap_or(s);
    let fields: Vec<&str> = s.split('\t').collect();
    if fields.len() != 2 {
        return Err(Error::input(
            path,
            line,
            format!("expected 2 tab-separated fields (id, text), found {}", fields.len()),
        ));
    }
    let id = fields[0].trim();
    if id.is_empty() {
        return Err(Error::input(path, line, "field 1 (id) is empty"));
    }
    crate::records::check_id(id).map_err(|m| Error::input(path, line, format!("field 1 (id): {m}")))?;
    Ok(TextRecord { id: id.to_string(), title: None, text: fields[1].to_string() })
}

impl LineReader<TextRecord> {
    /// Opens an `id\ttext` file (MS MARCO collection or queries).
    pub fn open_tsv(path: &Path) -> Result<Self> {
        Ok(Self::new(path, parse_tsv_record)?.unique_ids(|r| &r.id))
    }
}

// ---------------------------------------------------------------------------------------------
// text files by extension

/// The two kinds of text file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// JSON lines with `_id`/`id`, `text`, optional `title` (BEIR).
    Jsonl,
    /// `id\ttext` lines (MS MARCO).
    Tsv,
}

impl TextFormat {
    /// Chooses by extension: `.jsonl` / `.json` -> JSON lines, `.tsv` / `.txt` -> `id\ttext`.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "jsonl" | "json" => Ok(TextFormat::Jsonl),
            "tsv" | "txt" => Ok(TextFormat::Tsv),
            _ => Err(Error::config(
                path,
                format!(
                    "cannot tell the format from the extension {:?}: expected .jsonl (records with `_id`, `text`, \
                     optional `title`) or .tsv (`id<TAB>text`)",
                    ext
                ),
            )),
        }
    }
}

/// Streams the records of a `.jsonl` or `.tsv` text file (see [`TextFormat::from_path`]).
pub fn open_text_records(path: &Path) -> Result<Box<dyn Iterator<Item = Result<TextRecord>> + Send>> {
    Ok(match TextFormat::from_path(path)? {
        TextFormat::Jsonl => Box::new(RecordReader::open(path)?),
        TextFormat::Tsv => Box::new(RecordReader::open_tsv(path)?),
    })
}

/// Reads every record of a `.jsonl` or `.tsv` text file; an empty file is an error.
pub fn read_text_records(path: &Path) -> Result<Vec<TextRecord>> {
    let v = open_text_records(path)?.collect::<Result<Vec<_>>>()?;
    if v.is_empty() {
        return Err(Error::input(path, 0, "no records: the file is empty"));
    }
    Ok(v)
}

/// A path given for a corpus or queries may be a BEIR folder: then `DIR/default_name`
/// (`corpus.jsonl` / `queries.jsonl`) is meant. Files are returned as they are.
pub fn resolve_text_path(path: &Path, default_name: &str) -> PathBuf {
    if path.is_dir() {
        path.join(default_name)
    } else {
        path.to_path_buf()
    }
}

/// The text a lexical model indexes for a record: `title + " " + text` when there is a
/// non-empty title (as Pyserini's BEIR indexes do), else the text.
pub fn record_contents(r: &TextRecord) -> String {
    match r.title.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => format!("{t} {}", r.text),
        _ => r.text.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// BEIR folders

/// The files of a BEIR dataset folder.
#[derive(Debug, Clone, PartialEq)]
pub struct BeirPaths {
    pub corpus: PathBuf,
    pub queries: PathBuf,
    /// `qrels/{split}.tsv`
    pub qrels: PathBuf,
}

impl BeirPaths {
    /// The paths of `dir` for `split` (`train`, `dev`, `test`), checking that each file exists.
    pub fn new(dir: &Path, split: &str) -> Result<Self> {
        let p = BeirPaths {
            corpus: dir.join("corpus.jsonl"),
            queries: dir.join("queries.jsonl"),
            qrels: dir.join("qrels").join(format!("{split}.tsv")),
        };
        for f in [&p.corpus, &p.queries, &p.qrels] {
            if !f.is_file() {
                let mut msg =
                    "not found (a BEIR folder has corpus.jsonl, queries.jsonl and qrels/{split}.tsv)".to_string();
                if f == &p.qrels {
                    let splits = beir_splits(dir).unwrap_or_default();
                    msg += &format!(
                        "; splits present: {}",
                        if splits.is_empty() { "none".into() } else { splits.join(", ") }
                    );
                }
                return Err(Error::config(f, msg));
            }
        }
        Ok(p)
    }
}

/// The splits of a BEIR folder: the stems of `qrels/*.tsv`, sorted.
pub fn beir_splits(dir: &Path) -> Result<Vec<String>> {
    let q = dir.join("qrels");
    let rd = std::fs::read_dir(&q).map_err(|e| Error::io(&q, e))?;
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tsv"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(String::from))
        .collect();
    v.sort();
    Ok(v)
}

/// A BEIR dataset read into memory (small and medium collections; stream big corpora with
/// [`open_text_records`] instead).
#[derive(Debug, Clone)]
pub struct BeirDataset {
    pub corpus: Vec<TextRecord>,
    /// Only the queries that appear in the split's qrels, in `queries.jsonl` order.
    pub queries: Vec<TextRecord>,
    pub qrels: Qrels,
}

/// Loads a BEIR folder's corpus, the queries judged in `split`, and the split's qrels.
pub fn load_beir(dir: &Path, split: &str) -> Result<BeirDataset> {
    let p = BeirPaths::new(dir, split)?;
    let qrels = crate::trec::read_qrels(&p.qrels)?;
    let corpus = crate::records::read_records(&p.corpus)?;
    let queries = crate::records::read_records(&p.queries)?.into_iter().filter(|q| qrels.contains_key(&q.id)).collect();
    Ok(BeirDataset { corpus, queries, qrels })
}

// ---------------------------------------------------------------------------------------------
// Tevatron jsonl

/// A passage of a Tevatron training example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TevatronPassage {
    /// A string or number in the file; always written as a string.
    #[serde(deserialize_with = "string_or_number")]
    pub docid: String,
    /// Missing or null reads as empty.
    #[serde(default, deserialize_with = "string_or_null")]
    pub title: String,
    pub text: String,
}

/// One Tevatron training example:
/// `{"query_id", "query", "positive_passages": [{"docid","title","text"}], "negative_passages": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TevatronExample {
    /// Some files have none; it is then omitted when written.
    #[serde(default, deserialize_with = "opt_string_or_number", skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    pub query: String,
    pub positive_passages: Vec<TevatronPassage>,
    /// Missing reads as empty.
    #[serde(default)]
    pub negative_passages: Vec<TevatronPassage>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        o => Err(serde::de::Error::custom(format!("expected a string or number, found {o}"))),
    }
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        o => Err(serde::de::Error::custom(format!("expected a string or number, found {o}"))),
    }
}

fn string_or_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Parses one Tevatron line; errors name file, line and the field serde reports.
pub fn parse_tevatron(s: &str, path: &Path, line: usize) -> Result<TevatronExample> {
    let ex: TevatronExample = serde_json::from_str(s).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() { "malformed JSON" } else { "invalid Tevatron example" };
        Error::input(path, line, format!("{what}: {e}"))
    })?;
    Ok(ex)
}

/// A streaming reader of Tevatron jsonl.
pub type TevatronReader = LineReader<TevatronExample>;

impl LineReader<TevatronExample> {
    pub fn open(path: &Path) -> Result<Self> {
        Self::new(path, parse_tevatron)
    }
}

/// Reads a whole Tevatron file; an empty file is an error.
pub fn read_tevatron(path: &Path) -> Result<Vec<TevatronExample>> {
    let v = TevatronReader::open(path)?.collect::<Result<Vec<_>>>()?;
    if v.is_empty() {
        return Err(Error::input(path, 0, "no examples: the file is empty"));
    }
    Ok(v)
}

/// Writes Tevatron jsonl atomically (a temporary file in the same folder, renamed into place).
pub fn write_tevatron(path: &Path, examples: &[TevatronExample]) -> Result<()> {
    write_atomic(path, |w| {
        for ex in examples {
            serde_json::to_writer(&mut *w, ex).map_err(std::io::Error::other)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

pub use crate::output::write_atomic;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_lines() {
        let p = Path::new("q.tsv");
        let r = parse_tsv_record("12\twhat is it\r", p, 1).unwrap();
        assert_eq!(r, TextRecord { id: "12".into(), title: None, text: "what is it".into() });
        let e = parse_tsv_record("12 what", p, 3).unwrap_err().to_string();
        assert_eq!(e, "q.tsv, line 3: expected 2 tab-separated fields (id, text), found 1");
        let e = parse_tsv_record("1\ta\tb", p, 4).unwrap_err().to_string();
        assert_eq!(e, "q.tsv, line 4: expected 2 tab-separated fields (id, text), found 3");
        let e = parse_tsv_record("\tx", p, 5).unwrap_err().to_string();
        assert_eq!(e, "q.tsv, line 5: field 1 (id) is empty");
    }

    #[test]
    fn tevatron_lines() {
        let p = Path::new("t.jsonl");
        let ex = parse_tevatron(
            r#"{"query": "q", "positive_passages": [{"docid": 7, "text": "x"}], "negative_passages": [{"docid": "n", "title": null, "text": "y"}]}"#,
            p,
            1,
        )
        .unwrap();
        assert_eq!(ex.query_id, None);
        assert_eq!(ex.positive_passages[0].docid, "7");
        assert_eq!(ex.positive_passages[0].title, "");
        assert_eq!(ex.negative_passages[0].title, "");
        let s = serde_json::to_string(&ex).unwrap();
        assert!(!s.contains("query_id"), "{s}");
        let e = parse_tevatron(r#"{"query_id": "1", "positive_passages": []}"#, p, 2).unwrap_err().to_string();
        assert!(e.starts_with("t.jsonl, line 2: invalid Tevatron example: missing field `query`"), "{e}");
        let e =
            parse_tevatron(r#"{"query": "q", "positive_passages": [{"docid": "a"}]}"#, p, 3).unwrap_err().to_string();
        assert!(e.contains("missing field `text`"), "{e}");
        let e = parse_tevatron("{", p, 4).unwrap_err().to_string();
        assert!(e.starts_with("t.jsonl, line 4: malformed JSON"), "{e}");
    }

    #[test]
    fn format_by_extension() {
        assert_eq!(TextFormat::from_path(Path::new("a/corpus.jsonl")).unwrap(), TextFormat::Jsonl);
        assert_eq!(TextFormat::from_path(Path::new("collection.tsv")).unwrap(), TextFormat::Tsv);
        assert!(TextFormat::from_path(Path::new("x.csv")).is_err());
    }

    #[test]
    fn contents_joins_title() {
        let r = TextRecord { id: "d".into(), title: Some(" T ".into()), text: "x y".into() };
        assert_eq!(record_contents(&r), "T x y");
        let r = TextRecord { id: "d".into(), title: Some("".into()), text: "x".into() };
        assert_eq!(record_contents(&r), "x");
    }
}
