//! Files that a model folder names — shards listed by `model.safetensors.index.json`, tokenizer
//! and config files, adapter weights — are read only when they are regular files inside that
//! folder. A name may not be absolute or climb out (`../../etc/passwd`); a symbolic link must
//! resolve inside the folder, or, for a hub snapshot (`models--org--name/snapshots/REV`), inside
//! that repository's cache folder (where `huggingface_hub` keeps the blobs the links point to);
//! and FIFOs, devices and folders are refused before they are opened (a FIFO would block forever).
use crate::error::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// Checks that `name` is a plain relative path (`a.safetensors`, `sub/b.safetensors`): no root, no
/// drive prefix, no `.` or `..` components, not empty. `what` names it in the message.
pub fn check_relative_name(name: &str, what: &str) -> std::result::Result<(), String> {
    let p = Path::new(name);
    if name.is_empty() || name.contains('\0') {
        return Err(format!("{what} {name:?} is empty or holds a NUL byte"));
    }
    for c in p.components() {
        match c {
            Component::Normal(_) => {}
            _ => {
                return Err(format!(
                    "{what} {name:?} must be a relative path inside the model folder (no `..`, no absolute path)"
                ))
            }
        }
    }
    Ok(())
}

/// The folder a file of `dir` may resolve into: `dir` itself, or the repository folder of a hub
/// snapshot (`.../models--org--name` for `.../models--org--name/snapshots/REV`).
fn allowed_root(dir: &Path) -> PathBuf {
    let snapshots = dir.parent();
    let repo = snapshots.and_then(Path::parent);
    match (snapshots.and_then(Path::file_name), repo) {
        (Some(s), Some(repo))
            if s == "snapshots"
                && repo.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("models--")) =>
        {
            repo.to_path_buf()
        }
        _ => dir.to_path_buf(),
    }
}

/// `dir/name` when it is a regular file inside `dir` (see the module docs); an error naming the
/// file otherwise, also when it does not exist.
pub fn model_file(dir: &Path, name: &str) -> Result<PathBuf> {
    match model_file_opt(dir, name)? {
        Some(p) => Ok(p),
        None => {
            let p = dir.join(name);
            Err(Error::io(&p, std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")))
        }
    }
}

/// Like [`model_file`], but `None` when nothing is there (for optional files).
pub fn model_file_opt(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let p = dir.join(name);
    check_relative_name(name, "file name").map_err(|m| Error::config(&p, m))?;
    if std::fs::symlink_metadata(&p).is_err() {
        return Ok(None);
    }
    let meta = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?;
    if !meta.is_file() {
        return Err(Error::config(&p, "not a regular file (a folder, FIFO, socket or device): refusing to read it"));
    }
    let real = std::fs::canonicalize(&p).map_err(|e| Error::io(&p, e))?;
    let root = std::fs::canonicalize(allowed_root(dir)).map_err(|e| Error::io(dir, e))?;
    if !real.starts_with(&root) {
        return Err(Error::config(
            &p,
            format!("resolves to {}, outside the model folder {}: refusing to read it", real.display(), root.display()),
        ));
    }
    Ok(Some(p))
}

/// Reads `dir/name` through [`model_file`].
pub fn read_model_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let p = model_file(dir, name)?;
    std::fs::read(&p).map_err(|e| Error::io(&p, e))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn names_must_stay_inside_and_be_regular_files() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("model");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.safetensors"), b"x").unwrap();
        std::fs::write(dir.join("sub/b.safetensors"), b"x").unwrap();
        std::fs::write(d.path().join("secret"), b"x").unwrap();
        assert!(model_file(&dir, "a.safetensors").is_ok());
        assert!(model_file(&dir, "sub/b.safetensors").is_ok());
        for bad in ["../secret", "/etc/passwd", "sub/../../secret", "", "./a.safetensors"] {
            let e = model_file(&dir, bad).unwrap_err().to_string();
            assert!(e.contains("relative path") || e.contains("empty"), "{bad}: {e}");
        }
        std::os::unix::fs::symlink("../secret", dir.join("link.safetensors")).unwrap();
        let e = model_file(&dir, "link.safetensors").unwrap_err().to_string();
        assert!(e.contains("outside the model folder"), "{e}");
        std::os::unix::fs::symlink("a.safetensors", dir.join("inner.safetensors")).unwrap();
        assert!(model_file(&dir, "inner.safetensors").is_ok());
        let fifo = dir.join("fifo.safetensors");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let e = model_file(&dir, "fifo.safetensors").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(model_file(&dir, "sub").unwrap_err().to_string().contains("not a regular file"));
        assert!(model_file_opt(&dir, "missing.json").unwrap().is_none());
    }

    #[test]
    fn hub_snapshots_may_link_into_their_blobs() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("models--org--name");
        let snap = repo.join("snapshots/abc");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::write(repo.join("blobs/123"), b"x").unwrap();
        std::fs::write(d.path().join("other"), b"x").unwrap();
        std::os::unix::fs::symlink("../../blobs/123", snap.join("config.json")).unwrap();
        std::os::unix::fs::symlink("../../../other", snap.join("tokenizer.json")).unwrap();
        assert!(model_file(&snap, "config.json").is_ok());
        assert!(model_file(&snap, "tokenizer.json").unwrap_err().to_string().contains("outside"));
    }
}
