//! Output folders that never look complete unless they are: files are written under temporary
//! names and renamed at the end; on failure the temporaries (and a folder we created) are removed.
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub struct OutputDir {
    pub dir: PathBuf,
    created: bool,
    pending: Vec<(PathBuf, PathBuf)>,
    committed: bool,
}

impl OutputDir {
    pub fn create(dir: &Path) -> Result<Self> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create output folder", dir.display()))?;
        Ok(Self {
            dir: dir.into(),
            created,
            pending: Vec::new(),
            committed: false,
        })
    }

    /// A temporary path for final file `name`; it becomes `name` on [`OutputDir::commit`].
    pub fn temp_path(&mut self, name: &str) -> PathBuf {
        let tmp = self.dir.join(format!(".{name}.partial"));
        let _ = std::fs::remove_file(self.dir.join(name));
        self.pending.push((tmp.clone(), self.dir.join(name)));
        tmp
    }

    /// Renames every temporary to its final name, in the order they were asked for.
    pub fn commit(mut self) -> Result<()> {
        for (tmp, fin) in &self.pending {
            std::fs::rename(tmp, fin).with_context(|| format!("{}: cannot rename into place", fin.display()))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for (tmp, _) in &self.pending {
            let _ = std::fs::remove_file(tmp);
        }
        if self.created {
            let _ = std::fs::remove_dir(&self.dir); // only if empty
        }
    }
}

/// Writes the final model as an HF folder into `out` itself (beside its checkpoint-* folders):
/// files are written into a temporary folder and moved in, `model.safetensors` last.
pub fn save_final_model<B: burn::tensor::backend::Backend>(
    model: &llmql_core::model::DecoderModel<B>,
    source: &llmql_core::checkpoint::SourceFiles,
    out: &Path,
    dtype: llmql_core::weights::StoredDtype,
) -> Result<()> {
    let tmp = out.join(".final-model");
    llmql_core::export::save_hf_folder(model, source, &tmp, dtype, &mut |_| Ok(()))?;
    let mut names: Vec<String> = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .collect();
    names.sort_by_key(|n| n == "model.safetensors");
    for n in names {
        std::fs::rename(tmp.join(&n), out.join(&n)).with_context(|| format!("{}: cannot move into place", out.join(&n).display()))?;
    }
    let _ = std::fs::remove_dir(&tmp);
    Ok(())
}
