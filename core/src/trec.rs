//! TREC-style relevance judgments (qrels) and runs: reading, deterministic ordering, atomic writing.
//!
//! - qrels: TREC `qid 0 docid relevance` (whitespace separated; MS MARCO's `qrels.*.tsv` are this format
//!   with tabs) or BEIR tsv `query-id<TAB>corpus-id<TAB>score` (header line optional); the format is
//!   detected from the first non-empty line.
//! - runs: `qid Q0 docid rank score tag` (the tag may be missing). Ranks are not used: metrics re-sort
//!   by score (see [`crate::metrics`]).
//!
//! Every bad line is an [`Error::Input`] naming the file, the line and the field.
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// qid -> docid -> relevance grade.
pub type Qrels = BTreeMap<String, BTreeMap<String, i32>>;

/// One retrieved document of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEntry {
    pub docid: String,
    pub score: f64,
}

/// qid -> retrieved documents (in file order when read; any order when written).
pub type Run = BTreeMap<String, Vec<RunEntry>>;

fn open(path: &Path) -> Result<BufReader<std::fs::File>> {
    std::fs::File::open(path).map(BufReader::new).map_err(|e| Error::io(path, e))
}

/// Iterates `(line_number, line)` with 1-based numbers, `\r\n` endings handled, I/O errors named.
fn numbered_lines(path: &Path) -> Result<impl Iterator<Item = Result<(usize, String)>> + '_> {
    let reader = open(path)?;
    Ok(reader.lines().enumerate().map(move |(i, l)| {
        let mut l = l.map_err(|e| Error::io(path, e))?;
        if l.ends_with('\r') {
            l.pop();
        }
        Ok((i + 1, l))
    }))
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum QrelsFormat {
    Trec,
    Beir,
}

fn parse_grade(path: &Path, line: usize, field: &str, s: &str) -> Result<i32> {
    s.parse::<i32>().map_err(|_| Error::input(path, line, format!("{field} {s:?} is not an integer relevance grade")))
}

/// Reads qrels in TREC (`qid iter docid rel`) or BEIR tsv (`query-id\tcorpus-id\tscore`, with or without the
/// header) format, detected from the first non-empty line. Blank lines are skipped. A (qid, docid) pair judged
/// twice with the same grade is accepted; with different grades it is an error.
pub fn read_qrels(path: &Path) -> Result<Qrels> {
    let mut qrels = Qrels::new();
    let mut format: Option<QrelsFormat> = None;
    let mut count = 0usize;
    for item in numbered_lines(path)? {
        let (n, line) = item?;
        if line.trim().is_empty() {
            continue;
        }
        let fmt = match format {
            Some(f) => f,
            None => {
                let tab_fields = line.split('\t').count();
                let ws_fields = line.split_whitespace().count();
                let f = if tab_fields == 3 {
                    QrelsFormat::Beir
                } else if ws_fields == 4 {
                    QrelsFormat::Trec
                } else if ws_fields == 3 {
                    QrelsFormat::Beir
                } else {
                    return Err(Error::input(
                        path,
                        n,
                        format!(
                            "unrecognised qrels format: expected TREC `qid 0 docid relevance` (4 fields) or BEIR tsv \
                             `query-id<TAB>corpus-id<TAB>score` (3 fields), found {ws_fields} fields"
                        ),
                    ));
                };
                format = Some(f);
                if f == QrelsFormat::Beir {
                    // A header is a first line whose score column is not a number (`query-id corpus-id score`).
                    let third = split_beir(&line).get(2).map(|s| s.to_string()).unwrap_or_default();
                    if third.parse::<i32>().is_err() {
                        continue;
                    }
                }
                f
            }
        };
        let (qid, docid, grade) = match fmt {
            QrelsFormat::Trec => {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() != 4 {
                    return Err(Error::input(
                        path,
                        n,
                        format!("expected 4 fields `qid 0 docid relevance` (TREC qrels), found {}", fields.len()),
                    ));
                }
                (fields[0], fields[2], parse_grade(path, n, "relevance (4th field)", fields[3])?)
            }
            QrelsFormat::Beir => {
                let fields = split_beir(&line);
                if fields.len() != 3 {
                    return Err(Error::input(
                        path,
                        n,
                        format!(
                            "expected 3 tab-separated fields `query-id corpus-id score` (BEIR qrels), found {}",
                            fields.len()
                        ),
                    ));
                }
                (fields[0], fields[1], parse_grade(path, n, "score (3rd field)", fields[2])?)
            }
        };
        if qid.is_empty() || docid.is_empty() {
            return Err(Error::input(path, n, "empty query id or document id"));
        }
        let q = match qrels.get_mut(qid) {
            Some(q) => q,
            None => qrels.entry(qid.to_string()).or_default(),
        };
        match q.get(docid) {
            Some(&g) if g != grade => {
                return Err(Error::input(
                    path,
                    n,
                    format!("query {qid:?} document {docid:?} judged twice with different grades ({g} and {grade})"),
                ))
            }
            Some(_) => {}
            None => {
                q.insert(docid.to_string(), grade);
            }
        }
        count += 1;
    }
    if count == 0 {
        return Err(Error::Other(format!("{}: no relevance judgments in the file", path.display())));
    }
    Ok(qrels)
}

/// BEIR tsv fields: split on tabs when there are any (ids may then contain spaces), else on whitespace.
fn split_beir(line: &str) -> Vec<&str> {
    if line.contains('\t') {
        line.split('\t').map(str::trim).collect()
    } else {
        line.split_whitespace().collect()
    }
}

/// Reads a TREC run `qid Q0 docid rank score [tag]`, keeping each query's documents in file order.
/// Scores must be numbers (not NaN); a document retrieved twice for one query is an error (trec_eval rejects
/// such runs too). An empty file gives an empty run.
pub fn read_run(path: &Path) -> Result<Run> {
    let mut run = Run::new();
    let mut lines: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for item in numbered_lines(path)? {
        let (n, line) = item?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 6 && fields.len() != 5 {
            return Err(Error::input(
                path,
                n,
                format!("expected 6 fields `qid Q0 docid rank score tag` (TREC run), found {}", fields.len()),
            ));
        }
        let (qid, docid, score_s) = (fields[0], fields[2], fields[4]);
        let score: f64 = score_s
            .parse()
            .map_err(|_| Error::input(path, n, format!("score (5th field) {score_s:?} is not a number")))?;
        if score.is_nan() {
            return Err(Error::input(path, n, "score (5th field) is NaN"));
        }
        let entry = RunEntry { docid: docid.to_string(), score };
        match run.get_mut(qid) {
            Some(v) => {
                v.push(entry);
                lines.get_mut(qid).expect("same keys").push(n);
            }
            None => {
                run.insert(qid.to_string(), vec![entry]);
                lines.insert(qid.to_string(), vec![n]);
            }
        }
    }
    // Duplicate documents per query: sort positions by docid and compare neighbours.
    for (qid, entries) in &run {
        let mut idx: Vec<usize> = (0..entries.len()).collect();
        idx.sort_by(|&a, &b| entries[a].docid.cmp(&entries[b].docid).then(a.cmp(&b)));
        for w in idx.windows(2) {
            if entries[w[0]].docid == entries[w[1]].docid {
                let l = &lines[qid];
                return Err(Error::input(
                    path,
                    l[w[1]],
                    format!(
                        "document {:?} retrieved twice for query {qid:?} (first on line {})",
                        entries[w[1]].docid, l[w[0]]
                    ),
                ));
            }
        }
    }
    Ok(run)
}

/// Our deterministic output order: score descending, ties by docid ascending (`-0.0` ties with `0.0`).
/// This is also the order in which ir-measures' `RR@k` (MS MARCO script) reads a run.
pub fn sort_entries(entries: &mut [RunEntry]) {
    entries.sort_by(|a, b| (b.score + 0.0).total_cmp(&(a.score + 0.0)).then_with(|| a.docid.cmp(&b.docid)));
}

/// Writes qrels as BEIR tsv (`query-id<TAB>corpus-id<TAB>score` with its header line), queries and
/// documents in id order, atomically ([`crate::output::write_atomic`]).
pub fn write_qrels(path: &Path, qrels: &Qrels) -> Result<()> {
    for (qid, docs) in qrels {
        check_token(path, "query id", qid)?;
        for d in docs.keys() {
            check_token(path, "document id", d)?;
        }
    }
    crate::output::write_atomic(path, |w| {
        writeln!(w, "query-id\tcorpus-id\tscore")?;
        for (qid, docs) in qrels {
            for (d, g) in docs {
                writeln!(w, "{qid}\t{d}\t{g}")?;
            }
        }
        Ok(())
    })
}

fn check_token(path: &Path, what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(Error::Other(format!(
            "{}: cannot write a TREC run: {what} {s:?} is empty or contains whitespace",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `qid Q0 docid rank score tag` lines: queries in qid order, each sorted with [`sort_entries`], ranks from 1,
/// scores printed so that they read back to the same `f64`. Atomic: written to a temporary file next to `path`, then
/// renamed over it.
pub fn write_run(path: &Path, run: &Run, tag: &str) -> Result<()> {
    check_token(path, "run tag", tag)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Other(format!("{}: not a file path", path.display())))?
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| -> Result<()> {
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = BufWriter::new(f);
        for (qid, entries) in run {
            check_token(path, "query id", qid)?;
            let mut sorted = entries.clone();
            sort_entries(&mut sorted);
            for (i, e) in sorted.iter().enumerate() {
                check_token(path, "document id", &e.docid)?;
                writeln!(w, "{qid} Q0 {} {} {} {tag}", e.docid, i + 1, e.score).map_err(|e| Error::io(&tmp, e))?;
            }
        }
        let f = w.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
        p
    }

    #[test]
    fn reads_trec_qrels() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "q.txt", "1 0 d1 2\n1 0 d2 0\r\n\n2\t0\td3\t1\n");
        let q = read_qrels(&p).unwrap();
        assert_eq!(q["1"]["d1"], 2);
        assert_eq!(q["1"]["d2"], 0);
        assert_eq!(q["2"]["d3"], 1);
    }

    #[test]
    fn reads_beir_qrels_with_and_without_header() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "a.tsv", "query-id\tcorpus-id\tscore\nq1\tdoc 1\t1\nq1\td2\t0\n");
        let q = read_qrels(&p).unwrap();
        assert_eq!(q["q1"]["doc 1"], 1);
        assert_eq!(q["q1"]["d2"], 0);
        let p = file(&d, "b.tsv", "q1\td1\t3\n");
        assert_eq!(read_qrels(&p).unwrap()["q1"]["d1"], 3);
    }

    #[test]
    fn qrels_errors_name_line_and_field() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "q.txt", "1 0 d1 2\n1 0 d2 x\n");
        let e = read_qrels(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("relevance"), "{e}");
        let p = file(&d, "q2.txt", "1 0 d1 2\n1 0 d2\n");
        let e = read_qrels(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("4 fields"), "{e}");
        let p = file(&d, "q3.txt", "1 0 d1 2\n1 0 d1 1\n");
        let e = read_qrels(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("twice"), "{e}");
        let p = file(&d, "q4.txt", "1 0 d1 2\n1 0 d1 2\n");
        assert_eq!(read_qrels(&p).unwrap()["1"].len(), 1);
        let p = file(&d, "q5.tsv", "query-id\tcorpus-id\tscore\nq1\td1\n");
        let e = read_qrels(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("3 tab-separated"), "{e}");
        let p = file(&d, "q6.txt", "a b c d e\n");
        let e = read_qrels(&p).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("format"), "{e}");
        let p = file(&d, "q7.txt", "\n");
        assert!(read_qrels(&p).is_err());
    }

    #[test]
    fn reads_run_and_rejects_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "r.trec", "q1 Q0 d1 1 2.5 t\nq2 Q0 d9 1 -1e3 t\nq1 Q0 d2 2 2.5\n");
        let r = read_run(&p).unwrap();
        assert_eq!(
            r["q1"],
            vec![RunEntry { docid: "d1".into(), score: 2.5 }, RunEntry { docid: "d2".into(), score: 2.5 }]
        );
        assert_eq!(r["q2"][0].score, -1000.0);
        let p = file(&d, "dup.trec", "q1 Q0 d1 1 2.5 t\nq2 Q0 d1 1 2 t\nq1 Q0 d1 2 1.5 t\n");
        let e = read_run(&p).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("twice") && e.contains("line 1"), "{e}");
        let p = file(&d, "bad.trec", "q1 Q0 d1 1 abc t\n");
        let e = read_run(&p).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("score"), "{e}");
        let p = file(&d, "short.trec", "q1 d1 1\n");
        let e = read_run(&p).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("6 fields"), "{e}");
        let p = file(&d, "nan.trec", "q1 Q0 d1 1 NaN t\n");
        assert!(read_run(&p).unwrap_err().to_string().contains("NaN"));
    }

    #[test]
    fn sorts_score_desc_then_docid_asc() {
        let mut v = vec![
            RunEntry { docid: "b".into(), score: 1.0 },
            RunEntry { docid: "c".into(), score: 2.0 },
            RunEntry { docid: "a".into(), score: 1.0 },
        ];
        sort_entries(&mut v);
        let ids: Vec<&str> = v.iter().map(|e| e.docid.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
    }

    #[test]
    fn write_then_read_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.trec");
        let mut run = Run::new();
        run.insert(
            "q1".into(),
            vec![
                RunEntry { docid: "x".into(), score: 0.1 + 0.2 },
                RunEntry { docid: "y".into(), score: 0.7f32 as f64 },
            ],
        );
        write_run(&p, &run, "tag").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let first: Vec<&str> = text.lines().next().unwrap().split(' ').collect();
        assert_eq!(first[..4], ["q1", "Q0", "y", "1"]);
        let back = read_run(&p).unwrap();
        assert_eq!(back["q1"][0], run["q1"][1]);
        assert_eq!(back["q1"][1], run["q1"][0]);
        assert!(write_run(&p, &run, "bad tag").is_err());
        let leftovers: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }
}
