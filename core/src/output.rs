//! Writing outputs without ever losing the user's files or the previous output:
//!
//! - A folder llmql writes whole (an HF model folder, a checkpoint, an `export-web` folder) carries
//!   a marker file, [`MARKER`]. An existing folder is replaced only when it has the marker, and
//!   never when it is `.`, `..`, the root, the home folder or a folder holding the current one
//!   ([`check_replaceable`]).
//! - Replacing is rename-aside, rename-in, then delete the old one ([`replace_dir`]): killed at any
//!   point, either the old or the new folder is in place under the final name.
//! - Single files are written to a uniquely named temporary in the same folder, synced, renamed
//!   over the final name, and the folder synced ([`write_atomic`]).
//! - Temporary names are `.NAME.llmql-tmp-PID-N` ([`temp_sibling`]); those of killed runs (dead
//!   PID) are removed by the next run writing beside them ([`clean_stale_temps`]) — only names of
//!   that form, never anything else.
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The file that marks a folder as written by llmql (safe for llmql to replace).
pub const MARKER: &str = ".llmql-output";

/// The infix of every temporary name llmql uses.
pub const TEMP_TAG: &str = ".llmql-tmp-";

/// Writes the marker into `dir` (a folder llmql is writing).
pub fn write_marker(dir: &Path, kind: &str) -> Result<()> {
    let p = dir.join(MARKER);
    let text = format!("{{\"written_by\": \"llmql {}\", \"kind\": \"{kind}\"}}\n", env!("CARGO_PKG_VERSION"));
    std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
}

/// True when `dir` carries llmql's marker.
pub fn is_llmql_output(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(MARKER)).is_ok_and(|m| m.is_file())
}

/// Refuses an output folder that must never be replaced: `.`/`..` (or a path ending in them), the
/// root, the home folder, and any folder that holds the current one.
pub fn check_output_dir(dest: &Path) -> Result<()> {
    let refuse = |why: &str| Err(Error::config(dest, format!("refusing to use this as an output folder: {why}")));
    if dest.as_os_str().is_empty() {
        return refuse("empty path");
    }
    match dest.components().next_back() {
        Some(Component::CurDir) | Some(Component::ParentDir) => return refuse("it is `.` or `..`"),
        Some(Component::RootDir) | Some(Component::Prefix(_)) | None => return refuse("it is the root folder"),
        Some(Component::Normal(_)) => {}
    }
    if let Ok(real) = std::fs::canonicalize(dest) {
        if real.parent().is_none() {
            return refuse("it is the root folder");
        }
        let home = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok());
        if home.is_some_and(|h| h == real) {
            return refuse("it is the home folder");
        }
        if std::env::current_dir()
            .ok()
            .and_then(|c| std::fs::canonicalize(c).ok())
            .is_some_and(|c| c.starts_with(&real))
        {
            return refuse("it holds the current folder");
        }
    }
    Ok(())
}

/// Checks that `dest` may be replaced: [`check_output_dir`], and when it exists it is a folder
/// with llmql's [`MARKER`]. Call it before the work starts, so that a refusal costs nothing.
pub fn check_replaceable(dest: &Path) -> Result<()> {
    check_output_dir(dest)?;
    match std::fs::symlink_metadata(dest) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() && is_llmql_output(dest) => Ok(()),
        Ok(_) => Err(Error::config(
            dest,
            format!(
                "already exists and was not written by llmql (no {MARKER} marker): not replacing it; \
                 remove it yourself or choose another output folder"
            ),
        )),
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary name beside `dest`, unique to this process and call: `.NAME.llmql-tmp-PID-N`.
pub fn temp_sibling(dest: &Path) -> PathBuf {
    let parent = parent_of(dest);
    let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "output".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent.join(format!(".{name}{TEMP_TAG}{}-{n}", std::process::id()))
}

/// The folder `path` is in (`.` for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The PID in a temporary name of ours, if `name` is one.
fn temp_pid(name: &str) -> Option<u32> {
    let rest = &name[name.find(TEMP_TAG)? + TEMP_TAG.len()..];
    let (pid, n) = rest.split_once('-')?;
    if !name.starts_with('.') || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` is alive (`None` where it cannot be told: then nothing is cleaned).
fn pid_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        Some(Path::new("/proc").join(pid.to_string()).exists())
    } else {
        None
    }
}

/// Removes, in `dir`, llmql's temporaries (files or folders named `.NAME.llmql-tmp-PID-N`) left by
/// runs that are no longer alive. Anything else is left alone.
pub fn clean_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = temp_pid(&name) else { continue };
        if pid == std::process::id() || pid_alive(pid) != Some(false) {
            continue;
        }
        let p = e.path();
        tracing::info!("removing {} (left by an interrupted llmql run)", p.display());
        let _ = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
    }
}

/// Flushes a folder's entries (renames into it) to disk where the platform allows.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
    let _ = dir;
}

/// Flushes every file under `dir` (and the folders themselves) to disk.
pub fn sync_tree(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => sync_tree(&p)?,
            Ok(t) if t.is_file() => {
                std::fs::File::open(&p).and_then(|f| f.sync_all()).map_err(|e| Error::io(&p, e))?;
            }
            _ => {}
        }
    }
    sync_dir(dir);
    Ok(())
}

/// Puts the finished folder `tmp` (written beside `dest`) in place as `dest`: marks it as
/// llmql's, syncs it, renames any existing `dest` aside (after [`check_replaceable`]), renames
/// `tmp` in, then deletes the old folder. On failure `tmp` is removed and `dest` is what it was.
pub fn replace_dir(tmp: &Path, dest: &Path, kind: &str) -> Result<()> {
    let result = (|| {
        check_replaceable(dest)?;
        write_marker(tmp, kind)?;
        sync_tree(tmp)?;
        let aside = if std::fs::symlink_metadata(dest).is_ok() {
            let aside = temp_sibling(dest);
            std::fs::rename(dest, &aside).map_err(|e| Error::io(dest, e))?;
            Some(aside)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(tmp, dest) {
            if let Some(a) = &aside {
                let _ = std::fs::rename(a, dest);
            }
            return Err(Error::io(dest, e));
        }
        sync_dir(parent_of(dest));
        if let Some(a) = aside {
            std::fs::remove_dir_all(&a).map_err(|e| Error::io(&a, e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(tmp);
    }
    result
}

/// Writes `path` through a uniquely named temporary file in the same folder that is synced and
/// renamed into place only when `fill` succeeded, so a failed or interrupted write never leaves a
/// complete-looking file, and the previous file stays until the new one replaces it.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    clean_stale_temps(dir);
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut f = std::fs::File::create_new(&tmp)?;
        {
            let mut w = std::io::BufWriter::new(&mut f);
            fill(&mut w)?;
            w.flush()?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    sync_dir(dir);
    Ok(())
}

/// [`write_atomic`] of a byte string.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_dot_home_and_unmarked_folders() {
        for p in [".", "..", "a/..", "/", ""] {
            assert!(check_replaceable(Path::new(p)).is_err(), "{p}");
        }
        if let Some(home) = std::env::var_os("HOME") {
            assert!(check_replaceable(Path::new(&home)).unwrap_err().to_string().contains("home folder"));
        }
        let d = tempfile::tempdir().unwrap();
        let mine = d.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("precious.txt"), "x").unwrap();
        let e = check_replaceable(&mine).unwrap_err().to_string();
        assert!(e.contains("not written by llmql"), "{e}");
        let tmp = temp_sibling(&mine);
        std::fs::create_dir(&tmp).unwrap();
        assert!(replace_dir(&tmp, &mine, "test").is_err());
        assert!(mine.join("precious.txt").exists() && !tmp.exists());
        // A file is never replaced by a folder.
        let f = d.path().join("file");
        std::fs::write(&f, "x").unwrap();
        assert!(check_replaceable(&f).is_err());
    }

    #[test]
    fn replaces_marked_folders_by_rename() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        for round in 0..3 {
            let tmp = temp_sibling(&dest);
            std::fs::create_dir(&tmp).unwrap();
            std::fs::write(tmp.join("round"), round.to_string()).unwrap();
            replace_dir(&tmp, &dest, "test").unwrap();
            assert_eq!(std::fs::read_to_string(dest.join("round")).unwrap(), round.to_string());
            assert!(is_llmql_output(&dest));
        }
        // Nothing but the output is left beside it.
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out")]);
    }

    #[test]
    fn stale_temporaries_of_dead_runs_only_are_removed() {
        let d = tempfile::tempdir().unwrap();
        // PID 0 is never a user process; u32::MAX - 1 is not alive.
        let dead = d.path().join(format!(".embeddings.npy{TEMP_TAG}{}-0", u32::MAX - 1));
        let live = d.path().join(format!(".embeddings.npy{TEMP_TAG}{}-3", std::process::id()));
        let other = d.path().join(".embeddings.npy.partial");
        let user = d.path().join(format!("notes{TEMP_TAG}1-1"));
        for p in [&dead, &live, &other, &user] {
            std::fs::write(p, "x").unwrap();
        }
        clean_stale_temps(d.path());
        assert_eq!(!dead.exists(), cfg!(target_os = "linux"));
        assert!(live.exists() && other.exists() && user.exists());
    }

    #[test]
    fn atomic_writes_keep_the_old_file_until_the_new_one_is_complete() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ids.txt");
        write_file_atomic(&p, b"old\n").unwrap();
        let e = write_atomic(&p, |w| {
            w.write_all(b"new")?;
            Err(std::io::Error::other("killed"))
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\n");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
