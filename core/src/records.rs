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

/// Checks a record id where it is read: ids are written one a line to `ids.txt` and as
/// whitespace-separated fields of TREC runs, so an empty id, or one with whitespace or control
/// characters (a newline, a tab), would produce files that llmql itself later refuses.
pub fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err("the id is empty".into());
    }
    if let Some(c) = id.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the id {id:?} contains {c:?} (ids may not contain whitespace or control characters)"));
    }
    Ok(())
}

/// Parses one JSON line; `line` is 1-based, for messages.
pub fn parse_record(s: &str, path: &Path, line: usize) -> Result<TextRecord> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| Error::input(path, line, format!("malformed JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| Error::input(path, line, "expected a JSON object"))?;
    let id = match obj.get("_id").or_else(|| obj.get("id")) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(_) => return Err(Error::input(path, line, "field `_id`: expected a string or number")),
        None => return Err(Error::input(path, line, "missing field `_id` (or `id`)")),
    };
    check_id(&id).map_err(|m| Error::input(path, line, format!("field `_id`: {m}")))?;
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

/// The id of an item, for readers that refuse a repeated id.
pub type IdOf<T> = fn(&T) -> &str;

/// A streaming reader of one-item-per-line files (JSON lines, tsv). Blank lines are skipped;
/// every error names the file and line. Readers of records refuse a repeated id (naming both
/// lines); they keep 24 bytes per id, not the ids themselves.
pub struct LineReader<T> {
    path: PathBuf,
    lines: std::io::Lines<BufReader<std::fs::File>>,
    line: usize,
    parse: LineParser<T>,
    unique: Option<(IdOf<T>, IdSet)>,
}

/// Ids seen so far, as 128-bit keyed hashes (random keys: no input can be crafted to collide) with
/// the line of each.
struct IdSet {
    keys: (std::collections::hash_map::RandomState, std::collections::hash_map::RandomState),
    seen: std::collections::HashMap<u128, usize>,
}

impl IdSet {
    fn new() -> Self {
        Self { keys: Default::default(), seen: Default::default() }
    }
    /// Records `id` at `line`; the line of its first occurrence when it was seen before.
    fn insert(&mut self, id: &str, line: usize) -> Option<usize> {
        use std::hash::BuildHasher;
        let h = ((self.keys.0.hash_one(id) as u128) << 64) | self.keys.1.hash_one(id) as u128;
        match self.seen.entry(h) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(line);
                None
            }
        }
    }
}

impl<T> LineReader<T> {
    pub fn new(path: &Path, parse: LineParser<T>) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Self { path: path.into(), lines: BufReader::new(f).lines(), line: 0, parse, unique: None })
    }

    /// Refuses an item whose id (`id_of`) was already read from this file.
    pub fn unique_ids(mut self, id_of: IdOf<T>) -> Self {
        self.unique = Some((id_of, IdSet::new()));
        self
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
            let item = (self.parse)(&l, &self.path, self.line);
            if let (Ok(it), Some((id_of, seen))) = (&item, &mut self.unique) {
                let id = id_of(it);
                if let Some(first) = seen.insert(id, self.line) {
                    return Some(Err(Error::input(
                        &self.path,
                        self.line,
                        format!("duplicate id {id:?} (first on line {first}): ids must be unique"),
                    )));
                }
            }
            return Some(item);
        }
    }
}

fn record_id(r: &TextRecord) -> &str {
    &r.id
}

/// A streaming reader of JSON-lines text records.
pub type RecordReader = LineReader<TextRecord>;

impl LineReader<TextRecord> {
    /// Opens a JSON-lines file of text records.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self::new(path, parse_record)?.unique_ids(record_id))
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
        for (bad, what) in [(r#""""#, "empty"), (r#""a\nb""#, "'\\n'"), (r#""a b""#, "' '"), (r#""a\tb""#, "'\\t'")] {
            let e = parse_record(&format!(r#"{{"_id": {bad}, "text": "x"}}"#), p, 5).unwrap_err().to_string();
            assert!(e.starts_with("c.jsonl, line 5: field `_id`: ") && e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn duplicate_ids_name_both_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.jsonl");
        std::fs::write(&p, "{\"_id\": \"a\", \"text\": \"x\"}\n\n{\"_id\": \"b\", \"text\": \"y\"}\n{\"_id\": \"a\", \"text\": \"z\"}\n").unwrap();
        let e = read_records(&p).unwrap_err().to_string();
        assert!(e.ends_with("c.jsonl, line 4: duplicate id \"a\" (first on line 1): ids must be unique"), "{e}");
    }
}
