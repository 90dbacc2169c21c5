//! Output folders that never look complete unless they are, and never lose the previous output:
//! files are written under unique temporary names (`.NAME.llmql-tmp-PID-N`, so two runs into one
//! folder never share one), synced, and renamed over the final names only at commit, so a run that
//! fails or is killed leaves the previous output as it was. Temporaries of killed runs are removed
//! by the next run into the folder (see `llmql_core::output`).
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
        llmql_core::output::clean_stale_temps(dir);
        Ok(Self { dir: dir.into(), created, pending: Vec::new(), committed: false })
    }

    /// A temporary path for final file `name`; it becomes `name` on [`OutputDir::commit`]. The
    /// final file (an earlier run's output) is left in place until then.
    pub fn temp_path(&mut self, name: &str) -> PathBuf {
        let fin = self.dir.join(name);
        let tmp = llmql_core::output::temp_sibling(&fin);
        self.pending.push((tmp.clone(), fin));
        tmp
    }

    /// Syncs every temporary, then renames each to its final name in the order they were asked for
    /// (so the last one, e.g. `meta.json`, appears last), then syncs the folder.
    pub fn commit(mut self) -> Result<()> {
        for (tmp, _) in &self.pending {
            std::fs::File::open(tmp)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("{}: cannot sync", tmp.display()))?;
        }
        for (tmp, fin) in &self.pending {
            std::fs::rename(tmp, fin).with_context(|| format!("{}: cannot rename into place", fin.display()))?;
        }
        llmql_core::output::sync_dir(&self.dir);
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
    source: &llmql_core::model_source::SourceFiles,
    out: &Path,
    dtype: llmql_core::weights::StoredDtype,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create output folder", out.display()))?;
    let tmp = llmql_core::output::temp_sibling(&out.join("final-model"));
    llmql_core::export::save_hf_folder(model, source, &tmp, dtype, &mut |_| Ok(()))?;
    let mut names: Vec<String> =
        std::fs::read_dir(&tmp)?.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string())).collect();
    names.sort_by_key(|n| n == "model.safetensors");
    for n in names {
        std::fs::rename(tmp.join(&n), out.join(&n))
            .with_context(|| format!("{}: cannot move into place", out.join(&n).display()))?;
    }
    let _ = std::fs::remove_dir(&tmp);
    Ok(())
}
