//! Progress bars (indicatif) with rate and ETA, on stderr.
use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} ({{per_sec}}, ETA {{eta}})"
        ))
        .expect("valid template"),
    );
    pb
}

/// Progress bar + log lines for the training commands (ql-train, train).
pub struct TrainProgress {
    pub pb: ProgressBar,
    /// Test hook (`LLMQL_TEST_ABORT_AFTER_STEP`): abort the process right after this step, with no
    /// cleanup at all — like SIGKILL — to test atomic checkpoints and `--resume`.
    abort_after: Option<usize>,
}

impl TrainProgress {
    pub fn new(what: &str) -> Self {
        let abort_after = std::env::var("LLMQL_TEST_ABORT_AFTER_STEP").ok().and_then(|v| v.parse().ok());
        Self { pb: bar(0, what), abort_after }
    }
}

impl llmql_core::train::TrainObserver for TrainProgress {
    fn on_start(&mut self, total: usize, start: usize) {
        self.pb.set_length(total as u64);
        self.pb.set_position(start as u64);
    }
    fn on_step(&mut self, step: usize) {
        self.pb.set_position(step as u64);
        if self.abort_after == Some(step) {
            std::process::abort();
        }
    }
    fn on_log(&mut self, e: &llmql_core::train::checkpoint::LogEntry) {
        let cosine = e.embedding_cosine.map(|c| format!(" passage_cosine {c:.3}")).unwrap_or_default();
        self.pb.suspend(|| {
            tracing::info!(
                "step {} epoch {:.2} loss {:.4} lr {:.3e} grad_norm {:.3} tokens/s {:.0}{cosine}",
                e.step,
                e.epoch,
                e.loss,
                e.learning_rate,
                e.grad_norm,
                e.tokens_per_s
            )
        });
    }
    fn on_save(&mut self, dir: &std::path::Path) {
        self.pb.suspend(|| tracing::info!("saved {}", dir.display()));
    }
}
