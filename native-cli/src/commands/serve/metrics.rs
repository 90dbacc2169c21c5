//! `GET /metrics`: Prometheus text exposition (the `prometheus` crate) of what an operator of an
//! embedding service watches (the same families TEI exports, under `llmql_`): requests by endpoint
//! and status, request time, requests in flight and refused, the dynamic batches (requests, inputs
//! and tokens per batch), queue time and encode time, and the process's resident memory.
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub in_flight: IntGauge,
    pub rejected: IntCounter,
    pub batch_requests: Histogram,
    pub batch_inputs: Histogram,
    pub batch_tokens: Histogram,
    pub queue_seconds: Histogram,
    pub encode_seconds: Histogram,
    pub search_seconds: Histogram,
    resident: IntGauge,
}

const TIME_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
const TOKEN_BUCKETS: &[f64] = &[16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0];

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid histogram");
    r.register(Box::new(h.clone())).expect("unique metric name");
    h
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("llmql_requests_total", "HTTP requests by endpoint and status"),
            &["endpoint", "status"],
        )
        .expect("valid");
        r.register(Box::new(requests.clone())).expect("unique");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("llmql_request_duration_seconds", "Time from request to response, by endpoint")
                .buckets(TIME_BUCKETS.to_vec()),
            &["endpoint"],
        )
        .expect("valid");
        r.register(Box::new(request_seconds.clone())).expect("unique");
        let in_flight =
            IntGauge::new("llmql_requests_in_flight", "Encode/search requests admitted and not yet answered")
                .expect("valid");
        r.register(Box::new(in_flight.clone())).expect("unique");
        let rejected = IntCounter::new(
            "llmql_requests_rejected_total",
            "Requests answered 503 because --max-concurrent were in flight",
        )
        .expect("valid");
        r.register(Box::new(rejected.clone())).expect("unique");
        let resident =
            IntGauge::new("llmql_process_resident_memory_bytes", "Resident memory of the server process (VmRSS)")
                .expect("valid");
        r.register(Box::new(resident.clone())).expect("unique");
        Self {
            batch_requests: histogram(
                &r,
                "llmql_batch_requests",
                "Requests merged into one dynamic batch",
                SIZE_BUCKETS,
            ),
            batch_inputs: histogram(&r, "llmql_batch_size", "Texts encoded per dynamic batch", SIZE_BUCKETS),
            batch_tokens: histogram(&r, "llmql_batch_tokens", "Tokens (unpadded) per dynamic batch", TOKEN_BUCKETS),
            queue_seconds: histogram(
                &r,
                "llmql_queue_duration_seconds",
                "Time a request waited before its batch started",
                TIME_BUCKETS,
            ),
            encode_seconds: histogram(
                &r,
                "llmql_encode_duration_seconds",
                "Model time per dynamic batch",
                TIME_BUCKETS,
            ),
            search_seconds: histogram(&r, "llmql_search_duration_seconds", "Index search time per query", TIME_BUCKETS),
            registry: r,
            requests,
            request_seconds,
            in_flight,
            rejected,
            resident,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        if let Some(b) = resident_bytes() {
            self.resident.set(b as i64);
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding of valid metrics");
        String::from_utf8(out).expect("Prometheus text is UTF-8")
    }
}

/// `VmRSS` of this process (Linux), in bytes.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
