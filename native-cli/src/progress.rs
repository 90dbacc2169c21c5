//! Progress on stderr: an indicatif bar (rate, ETA) on a terminal; otherwise a plain `tracing`
//! line every [`PLAIN_EVERY`] and one when the work finishes, so logs redirected to a file or a
//! pipe carry no carriage returns or escape codes but still show that the run advances.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the plain (non-terminal) progress line is written.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// A progress bar on a terminal, periodic plain log lines elsewhere. Methods take `&self` (the bar
/// is shared with callbacks that may run on worker threads).
pub struct Progress {
    pb: ProgressBar,
    what: String,
    /// `Some` when stderr is not a terminal: the plain-line reporter's state.
    plain: Option<Mutex<Plain>>,
}

struct Plain {
    start: Instant,
    last: Instant,
    /// Position at `start` (a resumed training run starts part-way).
    start_pos: u64,
}

pub fn bar(total: u64, what: &str) -> Progress {
    let terminal = std::io::stderr().is_terminal();
    let pb = if terminal {
        ProgressBar::new(total)
    } else {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
    };
    let colour = if crate::logging::stderr_colour() { "{wide_bar:.cyan/blue}" } else { "{wide_bar}" };
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{elapsed_precise}}] {colour} {{pos}}/{{len}} ({{per_sec}}, ETA {{eta}})"
        ))
        .expect("valid template"),
    );
    let now = Instant::now();
    let plain = (!terminal).then(|| Mutex::new(Plain { start: now, last: now, start_pos: 0 }));
    Progress { pb, what: what.to_string(), plain }
}

impl Progress {
    pub fn inc(&self, n: u64) {
        self.pb.inc(n);
        self.plain_line(false);
    }
    /// The total, when it is known only once the work has started.
    pub fn set_length(&self, len: u64) {
        self.pb.set_length(len);
    }
    pub fn set_position(&self, pos: u64) {
        self.pb.set_position(pos);
        self.plain_line(false);
    }
    /// (Re)start at `pos` of `len` (a resumed run): the rate counts from here.
    pub fn start_at(&self, len: u64, pos: u64) {
        self.pb.set_length(len);
        self.pb.set_position(pos);
        if let Some(plain) = &self.plain {
            let now = Instant::now();
            *plain.lock().unwrap_or_else(|e| e.into_inner()) = Plain { start: now, last: now, start_pos: pos };
        }
    }
    /// Run `f` (typically a log call) without the bar drawn over it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.pb.suspend(f)
    }
    pub fn finish_and_clear(&self) {
        self.plain_line(true);
        self.pb.finish_and_clear();
    }

    /// Off a terminal: one `tracing` line when [`PLAIN_EVERY`] has passed since the last one, or
    /// at the end.
    fn plain_line(&self, end: bool) {
        let Some(plain) = &self.plain else { return };
        let mut p = plain.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if !end && now.duration_since(p.last) < PLAIN_EVERY {
            return;
        }
        p.last = now;
        let (pos, len) = (self.pb.position(), self.pb.length().unwrap_or(0));
        let secs = now.duration_since(p.start).as_secs_f64();
        let rate = if secs > 0.0 { pos.saturating_sub(p.start_pos) as f64 / secs } else { 0.0 };
        let pct = if len > 0 { 100.0 * pos as f64 / len as f64 } else { 0.0 };
        let what = &self.what;
        if end {
            tracing::info!("{what}: done, {pos}/{len} in {secs:.1}s ({rate:.1}/s)");
        } else {
            let eta = if rate > 0.0 { len.saturating_sub(pos) as f64 / rate } else { f64::NAN };
            tracing::info!("{what}: {pos}/{len} ({pct:.0}%, {rate:.1}/s, ETA {eta:.0}s)");
        }
    }
}

/// Progress bar + log lines for the training commands (ql-train, train).
pub struct TrainProgress {
    pub pb: Progress,
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
        self.pb.start_at(total as u64, start as u64);
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
