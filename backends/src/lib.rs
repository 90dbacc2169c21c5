//! # llmql-backends
//!
//! Turns a device string (`flex`, `cpu`, `wgpu`, `wgpu:cpu`, `wgpu:N`, `cuda`, `cuda:N`) into a
//! concrete Burn backend and device, and runs backend-generic work on it. Only this crate and the
//! front ends name concrete backends; `llmql-core` stays generic over `B: Backend`.
//!
//! Backends are cargo features: `flex` (default; pure-Rust CPU), `wgpu` (Vulkan/Metal/DX12/WebGPU),
//! `cuda`. Asking for a backend that was not compiled in, or for CUDA on a machine without a CUDA
//! driver, is a clear error rather than a panic.
use burn::tensor::backend::Backend;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Burn's pure-Rust CPU backend.
    Flex,
    /// wgpu: `None` = the default adapter, `Some(n)` = discrete GPU n.
    Wgpu(WgpuAdapter),
    /// CUDA device index.
    Cuda(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WgpuAdapter {
    Default,
    Cpu,
    Discrete(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("invalid device {0:?}: expected flex, cpu, wgpu, wgpu:cpu, wgpu:N, cuda or cuda:N")]
    Parse(String),
    #[error(
        "device {device:?} needs the `{feature}` feature: rebuild with `cargo build --release --features {feature}`"
    )]
    NotCompiled { device: String, feature: &'static str },
    #[error("device {device:?} is not usable on this machine: {reason}")]
    Unavailable { device: String, reason: String },
}

impl std::str::FromStr for DeviceSpec {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, BackendError> {
        let s = s.trim().to_ascii_lowercase();
        let (name, idx) = match s.split_once(':') {
            Some((n, i)) => (n.to_string(), Some(i.to_string())),
            None => (s.clone(), None),
        };
        let parse_idx = |i: &str| i.parse::<usize>().map_err(|_| BackendError::Parse(s.clone()));
        match (name.as_str(), idx.as_deref()) {
            ("flex" | "cpu", None) => Ok(DeviceSpec::Flex),
            ("wgpu", None) => Ok(DeviceSpec::Wgpu(WgpuAdapter::Default)),
            ("wgpu", Some("cpu")) => Ok(DeviceSpec::Wgpu(WgpuAdapter::Cpu)),
            ("wgpu", Some(i)) => Ok(DeviceSpec::Wgpu(WgpuAdapter::Discrete(parse_idx(i)?))),
            ("cuda", None) => Ok(DeviceSpec::Cuda(0)),
            ("cuda", Some(i)) => Ok(DeviceSpec::Cuda(parse_idx(i)?)),
            _ => Err(BackendError::Parse(s)),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Flex => write!(f, "flex"),
            DeviceSpec::Wgpu(WgpuAdapter::Default) => write!(f, "wgpu"),
            DeviceSpec::Wgpu(WgpuAdapter::Cpu) => write!(f, "wgpu:cpu"),
            DeviceSpec::Wgpu(WgpuAdapter::Discrete(i)) => write!(f, "wgpu:{i}"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Backend-generic work: implement `run` once, call it on any device with [`run_on`].
pub trait BackendTask {
    type Output;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// Backend-generic training work: runs on `Autodiff<backend>` of the chosen device.
pub trait AutodiffTask {
    type Output;
    fn run<B: burn::tensor::backend::AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Adapts an [`AutodiffTask`] to a plain backend, wrapping it in `Autodiff` (with Burn's balanced
/// op-level checkpointing when `checkpointing`: cheap ops are recomputed in the backward pass
/// instead of kept — the `--op-checkpointing` flag; per-layer checkpointing is llmql-core's).
struct WithAutodiff<T> {
    task: T,
    checkpointing: bool,
}

impl<T: AutodiffTask> BackendTask for WithAutodiff<T> {
    type Output = T::Output;
    fn run<B: Backend>(self, device: B::Device) -> T::Output {
        use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
        use burn::backend::Autodiff;
        if self.checkpointing {
            self.task.run::<Autodiff<B, BalancedCheckpointing>>(device)
        } else {
            self.task.run::<Autodiff<B>>(device)
        }
    }
}

/// Runs `work` on a thread of rayon's global pool (the CPU backend's threads) when called from the
/// process's main thread, else where it is called.
///
/// Why: the CPU backend's GEMMs and fused kernels are rayon parallel loops. Started from a thread
/// outside the pool, each one is queued to the pool's threads and the caller sleeps until they are
/// done (two thread wake-ups per operation, thousands of operations per training step), and the
/// caller's own serial work (operation bookkeeping, packing, copies) runs on a third thread. Run on
/// a pool thread, the same loops split their work with the caller in place: measured on the
/// stage-1 benchmark (2 threads), forward 1.03-1.07 -> 0.97-1.00 s and backward 2.0-2.1 -> 1.9-1.95 s
/// per step.
///
/// Only the main thread's work moves: threads the CLI starts itself (one per data-parallel peer,
/// `encode --devices`, the server's model thread) must not each hold one of the pool's threads
/// while waiting for one another (with more peers than pool threads they would wait forever), so
/// they keep calling in from outside as before.
#[cfg(feature = "flex")]
fn on_cpu_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let main = std::thread::current().name() == Some("main");
    if !main || rayon::current_thread_index().is_some() {
        return work();
    }
    rayon::scope(|_| work())
}

/// Runs training work on the device `spec` names.
pub fn run_autodiff_on<T>(spec: &DeviceSpec, checkpointing: bool, task: T) -> Result<T::Output, BackendError>
where
    T: AutodiffTask + Send,
    T::Output: Send,
{
    run_on(spec, WithAutodiff { task, checkpointing })
}

/// Which backends this build has.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

/// Checks that a CUDA device can be used (the CUDA runtime panics on first use without a driver).
#[cfg(feature = "cuda")]
pub fn probe_cuda(index: usize) -> Result<(), BackendError> {
    use burn::backend::cuda::CudaDevice;
    use burn::backend::Cuda;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(|| {
        let device = CudaDevice::new(index);
        let t = burn::tensor::Tensor::<Cuda, 1>::zeros([1], &device);
        t.into_data()
    });
    std::panic::set_hook(hook);
    r.map(|_| ()).map_err(|e| BackendError::Unavailable {
        device: format!("cuda:{index}"),
        reason: e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the CUDA runtime could not start (no driver or no device)".into()),
    })
}

/// Whether a CUDA device is usable here (always false without the `cuda` feature).
pub fn cuda_available(index: usize) -> bool {
    #[cfg(feature = "cuda")]
    {
        probe_cuda(index).is_ok()
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = index;
        false
    }
}

/// Runs `task` on the backend and device `spec` names.
pub fn run_on<T>(spec: &DeviceSpec, task: T) -> Result<T::Output, BackendError>
where
    T: BackendTask + Send,
    T::Output: Send,
{
    let _ = &task;
    match spec {
        DeviceSpec::Flex => {
            #[cfg(feature = "flex")]
            {
                tracing::info!("backend: flex (CPU)");
                return Ok(on_cpu_pool(|| task.run::<burn::backend::Flex>(Default::default())));
            }
            #[allow(unreachable_code)]
            Err(BackendError::NotCompiled { device: spec.to_string(), feature: "flex" })
        }
        DeviceSpec::Wgpu(adapter) => {
            #[cfg(feature = "wgpu")]
            {
                use burn::backend::wgpu::WgpuDevice;
                let device = match adapter {
                    WgpuAdapter::Default => WgpuDevice::DefaultDevice,
                    WgpuAdapter::Cpu => WgpuDevice::Cpu,
                    WgpuAdapter::Discrete(i) => WgpuDevice::DiscreteGpu(*i),
                };
                tracing::info!("backend: wgpu ({device:?})");
                return Ok(task.run::<burn::backend::Wgpu>(device));
            }
            #[allow(unreachable_code)]
            {
                let _ = adapter;
                Err(BackendError::NotCompiled { device: spec.to_string(), feature: "wgpu" })
            }
        }
        DeviceSpec::Cuda(index) => {
            #[cfg(feature = "cuda")]
            {
                probe_cuda(*index)?;
                tracing::info!("backend: cuda:{index}");
                return Ok(task.run::<burn::backend::Cuda>(burn::backend::cuda::CudaDevice::new(*index)));
            }
            #[allow(unreachable_code)]
            {
                let _ = index;
                Err(BackendError::NotCompiled { device: spec.to_string(), feature: "cuda" })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_strings() {
        assert_eq!("flex".parse::<DeviceSpec>().unwrap(), DeviceSpec::Flex);
        assert_eq!("CPU".parse::<DeviceSpec>().unwrap(), DeviceSpec::Flex);
        assert_eq!("wgpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Wgpu(WgpuAdapter::Default));
        assert_eq!("wgpu:2".parse::<DeviceSpec>().unwrap(), DeviceSpec::Wgpu(WgpuAdapter::Discrete(2)));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }
}
