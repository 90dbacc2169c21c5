//! Log set-up: `tracing` to stderr, human text or JSON lines (`--log-format`).
//!
//! Colour (ANSI escapes) only when stderr is a terminal and `NO_COLOR` is unset or empty
//! (<https://no-color.org>), so logs redirected to a file or a pipe are plain text. `json` writes one
//! JSON object per event (`timestamp`, `level`, `fields.message`, other fields), never coloured.
use std::io::IsTerminal;

/// How log events are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured only on a terminal without `NO_COLOR`).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Whether stderr may carry ANSI colour: a terminal, and `NO_COLOR` unset or empty.
pub fn stderr_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Install the global subscriber (level from `RUST_LOG`, default `info`).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match format {
        LogFormat::Text => builder.with_ansi(stderr_colour()).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).init(),
    }
}
