//! The process's memory allocator: mimalloc, told never to hand freed memory back to the OS.
//!
//! Why: a training step allocates and frees gigabytes of activations and gradients (the logits
//! alone are `batch x length x vocabulary` floats, 126 MiB at the benchmark's shape), and Burn's
//! CPU backend allocates every matmul output afresh. glibc's malloc serves every block over 32 MiB
//! (its `mmap` threshold can go no higher) with a fresh `mmap` and unmaps it on free, so each such
//! tensor costs page faults and the kernel's zeroing of every page it touches, every step: measured
//! on the stage-1 benchmark, 2.0 million page faults and 10 s of system time in a 29 s run,
//! 119 tokens/s. mimalloc with purging disabled reuses freed blocks without returning them: 10
//! thousand page faults, 134-146 tokens/s, peak RSS 3.2 -> 3.5 GiB (PyTorch's: 4.0 GiB). The
//! price is that the resident set stays at its peak for the life of the process (as glibc's heap
//! did under the previous `M_TRIM_THRESHOLD` tuning), which is what a training run or a server
//! with steady batches wants anyway.
//!
//! Only the `llmql` binary sets the global allocator; the libraries leave that choice to whoever
//! links them (the browser build keeps the Rust default).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (v2 and v3 `include/mimalloc.h`: the
/// milliseconds a freed region waits before it is returned to the OS; -1 never). `libmimalloc-sys`
/// binds `mi_option_set` but not this constant; the crate is pinned exactly in Cargo.toml so the
/// enum cannot move under us.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Apply the allocator options; call first thing in `main`, before any other thread exists.
pub fn configure() {
    // SAFETY: `mi_option_set` only stores an option value; it is not thread safe, which is why this
    // runs before any other thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
