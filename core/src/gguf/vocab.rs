//! A GGUF file's tokenizer (vocabulary, merges, token types and special ids stored as metadata)
//! rebuilt as a `tokenizer.json` for the `tokenizers` crate, the way transformers rebuilds it
//! (`integrations/gguf/gguf_tokenizer_mapping.py`):
//! - `gpt2` (byte-level BPE: SmolLM, Llama 3, Qwen2 ...): tokens outside the byte alphabet are
//!   re-spelled byte by byte, merges from the file, control tokens become special added tokens,
//!   user-defined ones plain added tokens; the split regex follows `tokenizer.ggml.pre`.
//! - `llama` (sentencepiece BPE with byte fallback: Llama 2, Mistral ...): Metaspace, merges from
//!   the file or derived from the token scores, BOS added unless the file says otherwise.
//!
//! One deliberate addition: for the `smollm` family of pre-tokenizers (`\p{N}` split first, as
//! llama.cpp and the models' own tokenizer.json do) digits are split one by one; transformers
//! 5.24's GGUF converter omits that step.
use super::reader::{GgufFile, Value};
use crate::error::{Error, Result};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;

/// `tokenizer.json` and `tokenizer_config.json` for the file's tokenizer.
pub struct GgufTokenizerFiles {
    pub tokenizer_json: Json,
    pub tokenizer_config: Json,
}

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-2's byte -> printable character table.
fn bytes_to_unicode() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut table = vec![' '; 256];
    for (b, c) in bs.into_iter().zip(cs) {
        table[b as usize] = char::from_u32(c).unwrap();
    }
    table
}

fn strings(g: &GgufFile, key: &str) -> Result<Vec<String>> {
    g.need(key)?
        .as_array()
        .and_then(|a| a.as_strings())
        .map(<[String]>::to_vec)
        .ok_or_else(|| Error::config(&g.path, format!("GGUF metadata `{key}` is not an array of strings")))
}

fn numbers(g: &GgufFile, key: &str) -> Option<Vec<f64>> {
    g.get(key)?.as_array()?.to_f64s()
}

fn added(id: usize, content: &str, special: bool) -> Json {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
           "normalized": false, "special": special})
}

pub fn tokenizer_files(g: &GgufFile) -> Result<GgufTokenizerFiles> {
    let kind = g.need("tokenizer.ggml.model")?.as_str().unwrap_or("").to_string();
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    let types: Vec<i64> =
        numbers(g, "tokenizer.ggml.token_type").map(|v| v.into_iter().map(|x| x as i64).collect()).unwrap_or_default();
    let merges_in_file = match g.get("tokenizer.ggml.merges") {
        Some(_) => Some(strings(g, "tokenizer.ggml.merges")?),
        None => None,
    };
    let special_id = |key: &str| g.get(key).and_then(Value::as_u64).map(|v| v as usize);
    let token_of = |key: &str| special_id(key).and_then(|i| tokens.get(i).cloned());
    let pre = g.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default").to_string();

    let (model, pre_tokenizer, decoder, added_tokens, default_bos) = match kind.as_str() {
        "gpt2" => {
            let table = bytes_to_unicode();
            let alphabet: std::collections::HashSet<char> = table.iter().copied().collect();
            let spelled = |t: &str| -> String {
                if t.chars().all(|c| alphabet.contains(&c)) {
                    t.to_string()
                } else {
                    t.bytes().map(|b| table[b as usize]).collect()
                }
            };
            let mut vocab = Map::new();
            for (i, t) in tokens.iter().enumerate() {
                vocab.insert(spelled(t), json!(i));
            }
            let merges = merges_in_file.clone().ok_or_else(|| {
                Error::config(&g.path, "GGUF byte-level (gpt2) tokenizer without `tokenizer.ggml.merges`")
            })?;
            let mut added_tokens = Vec::new();
            for (i, (t, ty)) in tokens.iter().zip(types.iter()).enumerate() {
                if *ty == 3 && t.chars().all(|c| alphabet.contains(&c)) {
                    added_tokens.push(added(i, t, true));
                } else if *ty == 4 && vocab.contains_key(t) {
                    added_tokens.push(added(i, t, false));
                }
            }
            let byte_level =
                json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
            let split = |re: &str| {
                json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
                    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
                ]})
            };
            let pre_tokenizer = match pre.as_str() {
                "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "dbrx" | "smaug-bpe" => {
                    split(LLAMA3_SPLIT)
                }
                "qwen2" | "deepseek-r1-qwen" | "megrez" => split(QWEN2_SPLIT),
                "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
                    json!({"type": "Sequence", "pretokenizers": [
                        {"type": "Digits", "individual_digits": true}, byte_level.clone()]})
                }
                _ => byte_level.clone(),
            };
            let model = json!({"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges});
            let decoder =
                json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true});
            (model, pre_tokenizer, decoder, added_tokens, false)
        }
        "llama" => {
            let mut vocab = Map::new();
            let mut index: HashMap<&str, usize> = HashMap::new();
            for (i, t) in tokens.iter().enumerate() {
                vocab.insert(t.clone(), json!(i));
                index.insert(t.as_str(), i);
            }
            let merges = match &merges_in_file {
                Some(m) => m.clone(),
                None => {
                    let scores = numbers(g, "tokenizer.ggml.scores").ok_or_else(|| {
                        Error::config(
                            &g.path,
                            "GGUF sentencepiece tokenizer with neither merges nor `tokenizer.ggml.scores`",
                        )
                    })?;
                    merges_from_scores(&tokens, &scores, &index)
                }
            };
            let added_tokens = tokens
                .iter()
                .zip(types.iter())
                .enumerate()
                .filter(|(_, (_, ty))| **ty == 3)
                .map(|(i, (t, _))| added(i, t, true))
                .collect();
            let model = json!({"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                "vocab": vocab, "merges": merges});
            let pre_tokenizer =
                json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false});
            let decoder = json!({"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]});
            (model, pre_tokenizer, decoder, added_tokens, true)
        }
        other => {
            return Err(Error::config(
                &g.path,
                format!("GGUF `tokenizer.ggml.model` = {other:?} is not supported (supported: gpt2, llama)"),
            ))
        }
    };

    let add_bos = g.get("tokenizer.ggml.add_bos_token").and_then(Value::as_bool).unwrap_or(default_bos);
    let add_eos = g.get("tokenizer.ggml.add_eos_token").and_then(Value::as_bool).unwrap_or(false);
    let bos = token_of("tokenizer.ggml.bos_token_id");
    let eos = token_of("tokenizer.ggml.eos_token_id");
    let post_processor = if add_bos || add_eos {
        let mut single = Vec::new();
        let mut pair = Vec::new();
        let mut specials = Map::new();
        let mut special = |name: &Option<String>, key: &str| -> Result<Json> {
            let t = name
                .clone()
                .ok_or_else(|| Error::config(&g.path, format!("`tokenizer.ggml.{key}` is needed but missing")))?;
            let id = tokens.iter().position(|x| *x == t).unwrap();
            specials.insert(t.clone(), json!({"id": t, "ids": [id], "tokens": [t]}));
            Ok(json!({"SpecialToken": {"id": t, "type_id": 0}}))
        };
        let b = if add_bos { Some(special(&bos, "bos_token_id")?) } else { None };
        let e = if add_eos { Some(special(&eos, "eos_token_id")?) } else { None };
        let piece = |seq: &mut Vec<Json>, id: u32| {
            seq.extend(b.clone());
            seq.push(json!({"Sequence": {"id": if id == 0 { "A" } else { "B" }, "type_id": id}}));
            seq.extend(e.clone());
        };
        piece(&mut single, 0);
        piece(&mut pair, 0);
        piece(&mut pair, 1);
        json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials})
    } else if kind == "gpt2" {
        json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
    } else {
        Json::Null
    };
    let tokenizer_json = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added_tokens,
        "normalizer": null, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
        "decoder": decoder, "model": model,
    });
    let mut cfg = Map::new();
    for (name, key) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    ] {
        if let Some(t) = token_of(key) {
            cfg.insert(name.into(), json!(t));
        }
    }
    cfg.insert("add_bos_token".into(), json!(add_bos));
    cfg.insert("add_eos_token".into(), json!(add_eos));
    if let Some(t) = g.get("tokenizer.chat_template").and_then(Value::as_str) {
        cfg.insert("chat_template".into(), json!(t));
    }
    cfg.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
    Ok(GgufTokenizerFiles { tokenizer_json, tokenizer_config: Json::Object(cfg) })
}

/// Longest token (in bytes) whose splits are considered by [`merges_from_scores`].
const MAX_MERGED_TOKEN_BYTES: usize = 1024;

/// Merges implied by a sentencepiece vocabulary: every split of a token into two vocabulary
/// tokens, ordered by the merged token's score (best first), then by the pieces' lengths -- as
/// transformers' `generate_merges` orders them (a stable sort, so ties keep vocabulary order).
fn merges_from_scores(tokens: &[String], scores: &[f64], index: &HashMap<&str, usize>) -> Vec<String> {
    let mut merges: Vec<(String, String, f64, usize, usize)> = Vec::new();
    for (t, &score) in tokens.iter().zip(scores) {
        // Sentencepiece pieces are short (16 characters by default); a huge "token" in a hostile
        // file would cost its length squared here, and has no merge a real vocabulary uses.
        if t.len() > MAX_MERGED_TOKEN_BYTES {
            continue;
        }
        let chars: Vec<(usize, char)> = t.char_indices().collect();
        let mut local = Vec::new();
        for &(at, _) in chars.iter().skip(1) {
            let (l, r) = t.split_at(at);
            if let (Some(&il), Some(&ir)) = (index.get(l), index.get(r)) {
                local.push((il, ir, l.to_string(), r.to_string()));
            }
        }
        local.sort_by_key(|&(il, ir, _, _)| (il, ir));
        for (_, _, l, r) in local {
            let (ll, lr) = (l.chars().count(), r.chars().count());
            merges.push((l, r, score, ll, lr));
        }
    }
    merges.sort_by(|a, b| {
        b.2.partial_cmp(&a.2).unwrap_or(std::cmp::Ordering::Equal).then(b.3.cmp(&a.3)).then(b.4.cmp(&a.4))
    });
    merges.into_iter().map(|(l, r, ..)| format!("{l} {r}")).collect()
}
