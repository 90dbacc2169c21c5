//! Hugging Face hub ids (`org/name`, optionally `org/name@revision`) as model and adapter sources, through the
//! standard hub cache (`hf-hub`): the cache is `HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`, laid out as the Python client lays it out
//! (`models--org--name/{refs,snapshots,blobs}`). With `HF_HUB_OFFLINE=1` only the cache is read;
//! otherwise missing files are downloaded, and a failed download falls back to the cache.
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The hub cache folder, as `huggingface_hub` chooses it.
pub fn cache_dir() -> PathBuf {
    for var in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"] {
        if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return PathBuf::from(p);
        }
    }
    if let Some(home) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join("hub");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("huggingface").join("hub")
}

/// True when `HF_HUB_OFFLINE` asks for no network.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// One path-safe name: non-empty, not starting with `.`, ASCII letters, digits, `-`, `_`, `.`.
fn safe_part(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `org/name` or `org/name@revision`: two non-empty path-safe parts, not a local path. The
/// revision (a branch, tag or commit; `refs/pr/N`) is held to the same rules, part by part: it
/// becomes a path in the cache (`refs/REVISION`), so `..` or an absolute path is refused.
pub fn looks_like_repo_id(s: &str) -> bool {
    let (id, revision) = match s.split_once('@') {
        Some((id, rev)) => (id, Some(rev)),
        None => (s, None),
    };
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2 && parts.iter().all(|p| safe_part(p)) && revision.is_none_or(|r| r.split('/').all(safe_part))
}

const OPTIONAL: [&str; 4] =
    ["tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"];

/// One hub repository of the cache (and of the network unless offline).
struct HubRepo<'a> {
    spec: &'a str,
    id: &'a str,
    revision: String,
    /// "model" or "adapter", for messages.
    what: &'static str,
    cache_root: PathBuf,
    cache: hf_hub::CacheRepo,
    api: Option<hf_hub::api::sync::ApiRepo>,
}

impl<'a> HubRepo<'a> {
    fn open(spec: &'a str, what: &'static str) -> Result<Self> {
        if !looks_like_repo_id(spec) {
            return Err(Error::config(
                Path::new(spec),
                "not a hub id: expected org/name or org/name@revision (letters, digits, `-`, `_`, `.`; no `..`)",
            ));
        }
        let (id, revision) = match spec.split_once('@') {
            Some((id, rev)) => (id, rev.to_string()),
            None => (spec, "main".to_string()),
        };
        let cache_root = cache_dir();
        let repo = hf_hub::Repo::with_revision(id.to_string(), hf_hub::RepoType::Model, revision.clone());
        let cache = hf_hub::Cache::new(cache_root.clone()).repo(repo.clone());
        let api = if offline() {
            None
        } else {
            hf_hub::api::sync::ApiBuilder::new()
                .with_cache_dir(cache_root.clone())
                .with_progress(true)
                .build()
                .ok()
                .map(|a| a.repo(repo.clone()))
        };
        Ok(Self { spec, id, revision, what, cache_root, cache, api })
    }

    fn where_(&self) -> String {
        format!(
            "hub {} `{}` (revision {}) in the cache {}{}",
            self.what,
            self.id,
            self.revision,
            self.cache_root.display(),
            if offline() { " (HF_HUB_OFFLINE is set)" } else { "" }
        )
    }

    /// `file` from the cache, else downloaded (unless offline).
    fn get(&self, file: &str) -> std::result::Result<PathBuf, String> {
        if let Some(p) = self.cache.get(file) {
            return Ok(p);
        }
        match &self.api {
            None => Err(format!("`{file}` is not in the cache")),
            Some(api) => {
                tracing::info!("downloading {file} of {}", self.id);
                api.get(file).map_err(|e| format!("`{file}`: download failed: {e}"))
            }
        }
    }

    fn need(&self, file: &str) -> Result<PathBuf> {
        self.get(file).map_err(|m| self.error(m))
    }

    fn error(&self, m: String) -> Error {
        Error::config(Path::new(self.spec), format!("{}: {m}", self.where_()))
    }

    /// The folder holding `file`, which must be `<cache>/models--org--name/snapshots/<one name>`,
    /// whatever the cache's refs file said.
    fn snapshot(&self, file: &Path) -> Result<PathBuf> {
        let snapshot = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let repo_dir = self.cache_root.join(format!("models--{}", self.id.replace('/', "--")));
        let inside = snapshot.parent() == Some(repo_dir.join("snapshots").as_path())
            && snapshot.file_name().and_then(|n| n.to_str()).is_some_and(safe_part);
        if !inside {
            return Err(self.error(format!(
                "resolved to {}, which is not a snapshot folder of this repository",
                snapshot.display()
            )));
        }
        Ok(snapshot)
    }
}

/// Resolves a hub id to the snapshot folder holding its config, tokenizer and safetensors files.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let repo = HubRepo::open(spec, "model")?;
    let config = repo.need("config.json")?;
    repo.need("tokenizer.json")?;
    for f in OPTIONAL {
        let _ = repo.get(f);
    }
    match repo.get("model.safetensors") {
        Ok(_) => {}
        Err(single) => {
            let index = repo
                .get("model.safetensors.index.json")
                .map_err(|m| repo.error(format!("no weights: {single}; {m}")))?;
            let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
            // Names are checked (relative, inside the snapshot) before any is fetched or opened.
            for f in crate::weights::index_shards(&text, &index)? {
                repo.need(&f)?;
            }
        }
    }
    repo.snapshot(&config)
}

/// Resolves the hub id of a PEFT adapter (a model repository holding `adapter_config.json` and
/// `adapter_model.safetensors`, as `PeftModel.push_to_hub` makes it) to its snapshot folder,
/// through the same cache as models.
pub fn resolve_adapter(spec: &str) -> Result<PathBuf> {
    let repo = HubRepo::open(spec, "adapter")?;
    let config = repo.need("adapter_config.json")?;
    repo.get("adapter_model.safetensors").map_err(|m| {
        let bin = if repo.get("adapter_model.bin").is_ok() {
            " (it has only adapter_model.bin, a PyTorch pickle, which llmql does not read: convert it to safetensors)"
        } else {
            ""
        };
        repo.error(format!("{m}{bin}"))
    })?;
    repo.snapshot(&config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_revisions_are_path_safe() {
        for ok in ["org/name", "org/name@main", "org/name@refs/pr/1", "o-1/n_2.x@v1.0"] {
            assert!(looks_like_repo_id(ok), "{ok}");
        }
        for bad in [
            "org/name@../../etc",
            "org/name@/etc/passwd",
            "org/name@",
            "org/name@a//b",
            "../x",
            "org/.name",
            "a/b/c",
            "org/name@.hidden",
        ] {
            assert!(!looks_like_repo_id(bad), "{bad}");
        }
        let e = resolve("org/name@../../../etc").unwrap_err().to_string();
        assert!(e.contains("not a hub id"), "{e}");
    }
}
