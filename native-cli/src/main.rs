//! `llmql`: a thin command-line front end over `llmql-core` and `llmql-backends`.
mod commands;
mod output;
mod progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "llmql", version, about = "LLM-QL dense retrieval with decoder LLMs, on Burn")]
struct Cli {
    /// Number of CPU threads for the flex backend (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode queries or passages (JSON lines with `_id`/`id`, `text`, optional `title`) into embeddings.npy + ids.txt.
    Encode(commands::encode::EncodeArgs),
    /// Describe a model folder: family, size, heads, dtype, vocabulary, BOS/EOS.
    Info(commands::info::InfoArgs),
    /// Benchmarks (compare with the PyTorch scripts in bench/).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    let result = match cli.command {
        Command::Encode(a) => commands::encode::run(a),
        Command::Info(a) => commands::info::run(a),
        Command::Bench(c) => commands::bench::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
