//! `llmql`: a thin command-line front end over `llmql-core` and `llmql-backends`.
mod allocator;
mod commands;
mod logging;
mod output;
mod progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "llmql", version, about = "LLM-QL dense retrieval with decoder LLMs, on Burn")]
struct Cli {
    /// Number of CPU threads for the flex backend (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Log format on stderr: `text` (coloured only on a terminal without NO_COLOR) or `json` (one
    /// object per line).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode queries or passages (JSON lines with `_id`/`id`, `text`, optional `title`) into embeddings.npy + ids.txt.
    Encode(commands::encode::EncodeArgs),
    /// Exact inner-product top-K search of encoded queries over encoded corpus shards; writes a TREC run.
    Search(commands::search::SearchArgs),
    /// Build a search index (flat exact, or HNSW approximate) from `encode` output, for `search` and `serve`.
    Index(commands::index::IndexArgs),
    /// Serve the retriever over HTTP: embeddings (OpenAI / TEI shapes), search, health, metrics, demo page.
    Serve(commands::serve::ServeArgs),
    /// Score a TREC run against qrels (nDCG@k, RR@k, R@k, P@k, AP as trec_eval defines them).
    Eval(commands::eval::EvalArgs),
    /// BM25 baseline run over a corpus (tantivy).
    Bm25(commands::bm25::Bm25Args),
    /// Rerank a run with word-based query likelihood (Dirichlet-smoothed unigram LM).
    RerankDirichlet(commands::dirichlet::DirichletArgs),
    /// LLM-QL stage 1: query-likelihood training with Attention Stop and Input Corruption.
    QlTrain(commands::ql_train::QlTrainArgs),
    /// LLM-QL stage 2: contrastive training (InfoNCE, in-batch + hard negatives, LoRA).
    Train(commands::train::TrainArgs),
    /// Merge a PEFT LoRA adapter into its base model (a plain HF folder).
    MergeLora(commands::merge_lora::MergeLoraArgs),
    /// Prepare what the browser demo loads: encoder weights (f16), adapter, corpus embeddings and texts.
    ExportWeb(commands::export_web::ExportWebArgs),
    /// Rerank a run's top-K by LLM-QL query likelihood.
    Rerank(commands::rerank::RerankArgs),
    /// Write training queries for a collection's passages with the QL model (doc2query), as BEIR
    /// queries + qrels; optionally keep only those BM25 connects back to their passage.
    GenerateQueries(commands::generate_queries::GenerateQueriesArgs),
    /// Keep the queries whose judged passage every given run ranks in its top K (the consistency filter).
    FilterQueries(commands::generate_queries::FilterQueriesArgs),
    /// Interpolate a first-stage run with a reranker's run (weight fixed, or chosen on held-out judged queries).
    Fuse(commands::fuse::FuseArgs),
    /// Mine hard negatives from a run into Tevatron-format training data.
    MineNegatives(commands::mine_negatives::MineNegativesArgs),
    /// Describe a model folder: family, size, heads, dtype, vocabulary, BOS/EOS.
    Info(commands::info::InfoArgs),
    /// The whole pipeline on the embedded collection: BM25, zero-shot, QL training, contrastive
    /// training, dense retrieval and QL rerank, with one results table.
    Quickstart(commands::quickstart::QuickstartArgs),
    /// Multi-node training: run Burn's collective orchestrator, which the nodes of `train`/`ql-train
    /// --nodes N --orchestrator ws://HOST:PORT` meet at (runs until stopped).
    Orchestrator(commands::orchestrator::OrchestratorArgs),
    /// Benchmarks (compare with the PyTorch scripts in bench/).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn main() {
    allocator::configure();
    let cli = Cli::parse();
    logging::init(cli.log_format);
    if let Some(n) = cli.threads {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    let result = match cli.command {
        Command::Encode(a) => commands::encode::run(a),
        Command::Info(a) => commands::info::run(a),
        Command::Search(a) => commands::search::run(a),
        Command::Index(a) => commands::index::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Bm25(a) => commands::bm25::run(a),
        Command::RerankDirichlet(a) => commands::dirichlet::run(a),
        Command::MineNegatives(a) => commands::mine_negatives::run(a),
        Command::QlTrain(a) => commands::ql_train::run(a),
        Command::Rerank(a) => commands::rerank::run(a),
        Command::GenerateQueries(a) => commands::generate_queries::run(a),
        Command::FilterQueries(a) => commands::generate_queries::run_filter(a),
        Command::Fuse(a) => commands::fuse::run(a),
        Command::Train(a) => commands::train::run(a),
        Command::MergeLora(a) => commands::merge_lora::run(a),
        Command::ExportWeb(a) => commands::export_web::run(a),
        Command::Orchestrator(a) => commands::orchestrator::run(a),
        Command::Bench(c) => commands::bench::run(c),
        Command::Quickstart(a) => commands::quickstart::run(a, cli.threads),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
