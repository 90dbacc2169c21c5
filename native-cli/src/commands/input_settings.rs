//! How text becomes model input, as flags defined once and resolved once: the dense encoder's
//! template, truncation, pooling, normalisation and length limits ([`EncoderArgs`], [`LengthArgs`]:
//! `encode`, `train`, `serve`, `export-web`), and query likelihood's length limits ([`QlLengthArgs`]:
//! `ql-train`, `rerank`, `generate-queries`).
//!
//! Each setting is, in this order: the flag; else the first source that records it (for `serve` the
//! index's `meta.json`; then the adapter's and the model's `llmql.json`, see
//! [`llmql_core::trained_with`]); else [`llmql_core::defaults`]. What was chosen, and from where, is
//! logged, so that `encode` and `serve` with the same model and no flags encode the same way.
use super::TruncationArgs;
use anyhow::{bail, Result};
use clap::Args;
use llmql_core::pooling::Pooling;
use llmql_core::trained_with::{EncoderRecord, QlRecord, TrainedWith};
use llmql_core::truncation::Truncation;
use llmql_core::{defaults, EncoderOptions, Kind, Template};
use std::path::{Path, PathBuf};

/// The dense encoder's template, truncation, pooling and normalisation.
#[derive(Args, Debug, Clone, Default)]
pub struct EncoderArgs {
    /// Input template: llmql (the reference's instructions), repllama, raw. Default: what the
    /// adapter or model was trained with (its llmql.json), else llmql.
    #[arg(long, value_parser = parse_template)]
    pub template: Option<Template>,
    #[command(flatten)]
    pub truncation: TruncationArgs,
    /// Pooling: eos (LLM-QL / RepLLaMA) or mean. Default: as trained, else eos.
    #[arg(long, value_parser = parse_pooling)]
    pub pooling: Option<Pooling>,
    /// L2-normalise embeddings (the default unless the model was trained with --no-normalize; the
    /// reference passes --normalize). The last of --normalize / --no-normalize wins.
    #[arg(long, overrides_with = "no_normalize")]
    pub normalize: bool,
    /// Keep raw pooled vectors (no L2 normalisation: dot product instead of cosine).
    #[arg(long, overrides_with = "normalize")]
    pub no_normalize: bool,
}

/// The dense encoder's length limits, one per kind.
#[derive(Args, Debug, Clone, Default)]
pub struct LengthArgs {
    /// Maximum query tokens, the appended EOS included (the llmql template alone takes ~29 SmolLM2
    /// tokens). Default: as trained (llmql.json), else 64.
    #[arg(long)]
    pub query_max_len: Option<usize>,
    /// Maximum passage tokens, the appended EOS included. Default: as trained, else 192.
    #[arg(long)]
    pub passage_max_len: Option<usize>,
}

/// The model `serve` and `export-web` encode with (either can take it from elsewhere: a quickstart
/// folder, an index), its adapter, and the encoder's settings.
#[derive(Args, Debug, Clone, Default)]
pub struct EncodingModelArgs {
    /// Model: HF folder, .gguf file or hub id. Default with --quickstart DIR: its stage-1 model
    /// (DIR/ql); for `serve`, else the model the index was encoded with (with its adapter).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// PEFT LoRA adapter on top of --model: a folder or a hub id org/name, in either PEFT layout
    /// (AutoModel/Tevatron or causal LM). Default with --quickstart DIR: DIR/dense.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Template, truncation, pooling, normalisation (as `llmql encode`).
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Length limits of queries and of passages.
    #[command(flatten)]
    pub lengths: LengthArgs,
}

/// Query likelihood's length limits (stage 1 and QL ranking) and truncation.
#[derive(Args, Debug, Clone, Default)]
pub struct QlLengthArgs {
    /// Longest document prompt in tokens (BOS, instruction, passage, suffix; the reference's
    /// --p_max_len). Default: what the model was trained with (its llmql.json), else 200.
    #[arg(long)]
    pub p_max_len: Option<usize>,
    /// Longest query in tokens, the closing EOS included (the reference's --q_max_len). Default: as
    /// trained, else 200.
    #[arg(long)]
    pub q_max_len: Option<usize>,
    #[command(flatten)]
    pub truncation: TruncationArgs,
}

fn parse_template(s: &str) -> std::result::Result<Template, String> {
    s.parse()
}

fn parse_pooling(s: &str) -> std::result::Result<Pooling, String> {
    s.parse()
}

impl EncoderArgs {
    fn given(&self, lengths: &LengthArgs) -> EncoderRecord {
        EncoderRecord {
            template: self.template,
            query_max_len: lengths.query_max_len,
            passage_max_len: lengths.passage_max_len,
            truncation: self.truncation.truncation,
            pooling: self.pooling,
            normalize: match (self.normalize, self.no_normalize) {
                (_, true) => Some(false),
                (true, _) => Some(true),
                _ => None,
            },
        }
    }
}

/// A place a setting can come from, most trusted first.
pub struct Source<R> {
    /// How the log names it, e.g. `the adapter's llmql.json (out/dense)`.
    pub name: String,
    pub record: R,
}

/// The `llmql.json` records of an adapter and its base model (in that order), those that exist.
pub fn trained_with(model: &Path, adapter: Option<&Path>) -> Result<Vec<Source<TrainedWith>>> {
    let mut out = Vec::new();
    for (what, dir) in [("adapter", adapter), ("model", Some(model))] {
        if let Some(dir) = dir {
            if let Some(record) = TrainedWith::read(dir)? {
                out.push(Source { name: format!("the {what}'s {}", TrainedWith::path(dir).display()), record });
            }
        }
    }
    Ok(out)
}

/// The part `part` picks of each record among `sources` that has it (its dense-encoder or its
/// query-likelihood settings).
fn parts<R>(sources: &[Source<TrainedWith>], part: impl Fn(&TrainedWith) -> Option<R>) -> Vec<Source<R>> {
    sources.iter().filter_map(|s| part(&s.record).map(|record| Source { name: s.name.clone(), record })).collect()
}

/// The dense encoder's records among `sources`.
pub fn encoder_sources(sources: &[Source<TrainedWith>]) -> Vec<Source<EncoderRecord>> {
    parts(sources, |r| r.encoder)
}

/// The dense encoder's settings, every field chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSettings {
    pub template: Template,
    pub query_max_len: usize,
    pub passage_max_len: usize,
    pub truncation: Truncation,
    pub pooling: Pooling,
    pub normalize: bool,
}

impl EncoderSettings {
    /// The encoder options for inputs of `kind`.
    pub fn options(&self, kind: Kind) -> EncoderOptions {
        EncoderOptions {
            template: self.template,
            max_len: self.max_len(kind),
            normalize: self.normalize,
            pooling: self.pooling,
            truncation: self.truncation,
        }
    }

    pub fn max_len(&self, kind: Kind) -> usize {
        match kind {
            Kind::Query => self.query_max_len,
            Kind::Passage => self.passage_max_len,
        }
    }

    /// As `llmql_core::trained_with` records it.
    pub fn record(&self) -> EncoderRecord {
        EncoderRecord {
            template: Some(self.template),
            query_max_len: Some(self.query_max_len),
            passage_max_len: Some(self.passage_max_len),
            truncation: Some(self.truncation),
            pooling: Some(self.pooling),
            normalize: Some(self.normalize),
        }
    }
}

/// One setting: the flag, else the first source holding it, else the default; says which.
fn pick<R, T: Copy + std::fmt::Debug>(
    flag: &str,
    given: Option<T>,
    sources: &[Source<R>],
    field: impl Fn(&R) -> Option<T>,
    default: T,
    chosen: &mut Vec<String>,
) -> T {
    let (v, from) = match given {
        Some(v) => (v, "flag".to_string()),
        None => match sources.iter().find_map(|s| field(&s.record).map(|v| (v, s.name.clone()))) {
            Some(found) => found,
            None => (default, "default".to_string()),
        },
    };
    chosen.push(format!("--{flag} {} ({from})", format!("{v:?}").to_lowercase()));
    v
}

/// Checks a length limit (a token and the EOS at least).
fn check_len(flag: &str, v: usize) -> Result<()> {
    if v < 2 {
        bail!("--{flag} {v}: must be at least 2 (one token and the EOS)");
    }
    Ok(())
}

/// Resolves the dense encoder's settings from the flags, then `sources`, then the defaults, and
/// logs what was chosen from where (`what`: the command or purpose, for the log line).
pub fn resolve_encoder(
    what: &str,
    args: &EncoderArgs,
    lengths: &LengthArgs,
    sources: &[Source<EncoderRecord>],
) -> Result<EncoderSettings> {
    let given = args.given(lengths);
    let mut chosen = Vec::new();
    let c = &mut chosen;
    let s = EncoderSettings {
        template: pick("template", given.template, sources, |r| r.template, defaults::TEMPLATE, c),
        query_max_len: pick(
            "query-max-len",
            given.query_max_len,
            sources,
            |r| r.query_max_len,
            defaults::QUERY_MAX_LEN,
            c,
        ),
        passage_max_len: pick(
            "passage-max-len",
            given.passage_max_len,
            sources,
            |r| r.passage_max_len,
            defaults::PASSAGE_MAX_LEN,
            c,
        ),
        truncation: pick("truncation", given.truncation, sources, |r| r.truncation, defaults::TRUNCATION, c),
        pooling: pick("pooling", given.pooling, sources, |r| r.pooling, defaults::POOLING, c),
        normalize: pick("normalize", given.normalize, sources, |r| r.normalize, defaults::NORMALIZE, c),
    };
    check_len("query-max-len", s.query_max_len)?;
    check_len("passage-max-len", s.passage_max_len)?;
    log_chosen(what, &chosen, sources.len());
    Ok(s)
}

/// Query likelihood's settings, every field chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QlSettings {
    pub p_max_len: usize,
    pub q_max_len: usize,
    pub truncation: Truncation,
}

impl QlSettings {
    pub fn record(&self) -> QlRecord {
        QlRecord { p_max_len: Some(self.p_max_len), q_max_len: Some(self.q_max_len), truncation: Some(self.truncation) }
    }
}

/// Resolves query likelihood's lengths from the flags, then the `ql` records of `sources`, then the
/// defaults, and logs the choice.
pub fn resolve_ql(what: &str, args: &QlLengthArgs, sources: &[Source<TrainedWith>]) -> Result<QlSettings> {
    let sources: Vec<Source<QlRecord>> = parts(sources, |r| r.ql);
    let mut chosen = Vec::new();
    let c = &mut chosen;
    let s = QlSettings {
        p_max_len: pick("p-max-len", args.p_max_len, &sources, |r| r.p_max_len, defaults::QL_PASSAGE_MAX_LEN, c),
        q_max_len: pick("q-max-len", args.q_max_len, &sources, |r| r.q_max_len, defaults::QL_QUERY_MAX_LEN, c),
        truncation: pick("truncation", args.truncation.truncation, &sources, |r| r.truncation, defaults::TRUNCATION, c),
    };
    check_len("p-max-len", s.p_max_len)?;
    check_len("q-max-len", s.q_max_len)?;
    log_chosen(what, &chosen, sources.len());
    Ok(s)
}

fn log_chosen(what: &str, chosen: &[String], sources: usize) {
    let line = chosen.join(", ");
    // Settings from a record are worth seeing; all flags/defaults only at debug.
    if sources > 0 {
        tracing::info!("{what}: {line}");
    } else {
        tracing::debug!("{what}: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_beats_a_record_which_beats_the_default() {
        let rec = EncoderRecord { query_max_len: Some(40), pooling: Some(Pooling::Mean), ..Default::default() };
        let sources = [Source { name: "the adapter's llmql.json".into(), record: rec }];
        let lengths = LengthArgs { query_max_len: None, passage_max_len: Some(100) };
        let s = resolve_encoder("test", &EncoderArgs::default(), &lengths, &sources).unwrap();
        assert_eq!((s.query_max_len, s.passage_max_len, s.pooling), (40, 100, Pooling::Mean));
        assert_eq!((s.template, s.normalize, s.truncation), (defaults::TEMPLATE, true, defaults::TRUNCATION));
        let args = EncoderArgs { pooling: Some(Pooling::Eos), no_normalize: true, ..Default::default() };
        let s = resolve_encoder("test", &args, &LengthArgs::default(), &sources).unwrap();
        assert_eq!((s.query_max_len, s.passage_max_len, s.pooling, s.normalize), (40, 192, Pooling::Eos, false));
        // Sources layer field by field: the first that records a setting gives it.
        let other = EncoderRecord { query_max_len: Some(64), passage_max_len: Some(100), ..Default::default() };
        let both = [Source { name: "a".into(), record: rec }, Source { name: "b".into(), record: other }];
        let s = resolve_encoder("test", &EncoderArgs::default(), &LengthArgs::default(), &both).unwrap();
        assert_eq!((s.query_max_len, s.passage_max_len, s.pooling), (40, 100, Pooling::Mean));
        let none = resolve_encoder("test", &EncoderArgs::default(), &LengthArgs::default(), &[]).unwrap();
        assert_eq!(none.options(Kind::Query).max_len, defaults::QUERY_MAX_LEN);
        let bad = LengthArgs { query_max_len: Some(1), passage_max_len: None };
        assert!(resolve_encoder("test", &EncoderArgs::default(), &bad, &[])
            .unwrap_err()
            .to_string()
            .contains("--query-max-len"));
    }
}
