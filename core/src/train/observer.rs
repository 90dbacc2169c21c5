//! Progress of a training run as it happens ([`TrainObserver`]): the CLI draws a bar and logs,
//! benchmarks time the steps and record the batches, tests count steps.
use super::checkpoint::LogEntry;
use crate::ql::example::QlExample;
use std::path::Path;

/// Callbacks of the training loop ([`super::trainer::train`]); only rank 0 of a data-parallel group
/// gets `on_step`, `on_log` and `on_save`.
pub trait TrainObserver {
    fn on_start(&mut self, _total_steps: usize, _start_step: usize) {}
    /// A micro-batch of step `step` (numbered as [`Self::on_step`] numbers it), as this peer is about
    /// to train on it (benchmarks count and record its tokens).
    fn on_batch(&mut self, _step: usize, _batch: BatchInputs<'_>) {}
    /// Step `step` (from 1) is done: its optimizer update applied, before any checkpoint is written.
    fn on_step(&mut self, _step: usize) {}
    fn on_log(&mut self, _entry: &LogEntry) {}
    fn on_save(&mut self, _dir: &Path) {}
}

/// The token ids of one micro-batch (see [`TrainObserver::on_batch`]).
#[derive(Debug, Clone, Copy)]
pub enum BatchInputs<'a> {
    /// Stage 1: the examples (layout, separator, targets).
    Ql(&'a [QlExample]),
    /// Stage 2: the queries, then each query's group of passages.
    Contrastive { queries: &'a [Vec<u32>], passages: &'a [Vec<u32>] },
}

/// An observer that does nothing.
pub struct Quiet;
impl TrainObserver for Quiet {}
