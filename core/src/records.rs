//! Text records in JSON lines (`_id` or `id`, `text`, optional `title`), so BEIR `corpus.jsonl`
//! and `queries.jsonl` read unchanged. Streamed line by line; every error names file and line.
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct TextRecord {
    pub id: String,
    pub title: Option<String>,
    pub text: String,
}

/// Parses one JSON line; `line` is 1-based, for messages.
pub fn parse_record(s: &str, path: &Path, line: usize) -> Result<TextRecord> {
    let v: serde_json::Value = serde_json::from_str(s)
        .map_err(|e| Error::input(path, line, format!("malformed JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| Error::input(path, line, "expected a JSON object"))?;
    let id = match obj.get("_id").or_else(|| obj.get("id")) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(_) => return Err(Error::input(path, line, "field `_id`: expected a string or number")),
        None => return Err(Error::input(path, line, "missing field `_id` (or `id`)")),
    };
    let text = match obj.get("text") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(Error::input(path, line, "field `text`: expected a string")),
        None => return Err(Error::input(path, line, "missing field `text`")),
    };
    let title = match obj.get("title") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Error::input(path, line, "field `title`: expected a string")),
    };
    Ok(TextRecord { id, title, text })
}

/// Parses one line (1-based `line`, for messages) of `path`.
pub type LineParser<T> = fn(&str, &Path, usize) -> Result<T>;

/// A streaming reader of one-item-per-line files (JSON lines, tsv). Blank lines are skipped;
/// every error names the file and line.
pub struct LineReader<T> {
    path: PathBuf,
    lines: std::io::Lines<BufReader<std::fs::File>>,
    line: usize,
    parse: LineParser<T>,
}

impl<T> LineReader<T> {
    pub fn new(path: &Path, parse: LineParser<T>) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.into(),
            lines: BufReader::new(f).lines(),
            line: 0,
            parse,
        })
    }
}

impl<T> Iterator for LineReader<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let l = self.lines.next()?;
            self.line += 1;
            let l = match l {
                Ok(l) => l,
                Err(e) => return Some(Err(Error::input(&self.path, self.line, format!("unreadable line: {e}")))),
            };
            if l.trim().is_empty() {
                continue;
            }
            return Some((self.parse)(&l, &self.path, self.line));
        }
    }
}

/// A streaming reader of JSON-lines text records.
pub type RecordReader = LineReader<TextRecord>;

impl LineReader<TextRecord> {
    /// Opens a JSON-lines file of text records.
    pub fn open(path: &Path) -> Result<Self> {
        Self::new(path, parse_record)
    }
}

/// Reads every record; an empty file is an error.
pub fn read_records(path: &Path) -> Result<Vec<TextRecord>> {
    let v = RecordReader::open(path)?.collect::<Result<Vec<_>>>()?;
    if v.is_empty() {
        return Err(Error::input(path, 0, "no records: the file is empty"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_beir_lines_and_names_errors() {
        let p = Path::new("c.jsonl");
        let r = parse_record(r#"{"_id": "d1", "title": "T", "text": "x"}"#, p, 1).unwrap();
        assert_eq!(r, TextRecord { id: "d1".into(), title: Some("T".into()), text: "x".into() });
        let r = parse_record(r#"{"id": 7, "text": "y", "title": null}"#, p, 1).unwrap();
        assert_eq!(r.id, "7");
        assert_eq!(r.title, None);
        let e = parse_record(r#"{"_id": "a"}"#, p, 3).unwrap_err().to_string();
        assert_eq!(e, "c.jsonl, line 3: missing field `text`");
        let e = parse_record(r#"{"_id": "a", "text": "#, p, 4).unwrap_err().to_string();
        assert!(e.starts_with("c.jsonl, line 4: malformed JSON"), "{e}");
    }
}
