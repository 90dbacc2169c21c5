//! The all-reduce that data-parallel training runs on, per device kind: NCCL (through cudarc, in
//! Burn's CUDA backend: `burn::tensor::backend::distributed::DistributedBackend::all_reduce`) when
//! every peer is a distinct CUDA device, Burn's collective (`burn::collective`) otherwise.
//! `LLMQL_COLLECTIVE=burn` forces Burn's collective on CUDA too.
use crate::DeviceSpec;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use llmql_core::train::data_parallel::{BurnCollective, Collective, MultiNode};

/// One peer's handle of a data-parallel group (see the module docs).
pub enum PeerCollective {
    Burn(BurnCollective),
    #[cfg(feature = "cuda")]
    Nccl(nccl::NcclCollective),
}

impl PeerCollective {
    /// Which engine this handle uses.
    pub fn engine(&self) -> &'static str {
        match self {
            PeerCollective::Burn(_) => "burn::collective",
            #[cfg(feature = "cuda")]
            PeerCollective::Nccl(_) => "nccl",
        }
    }
}

/// One handle per device of `devices`, in order.
pub fn peer_group(devices: &[DeviceSpec], multi_node: Option<&MultiNode>) -> Vec<PeerCollective> {
    #[cfg(feature = "cuda")]
    {
        let cuda: Vec<usize> = devices.iter().filter_map(|d| if let DeviceSpec::Cuda(i) = d { Some(*i) } else { None }).collect();
        let distinct = cuda.iter().collect::<std::collections::BTreeSet<_>>().len() == cuda.len();
        let forced_burn = std::env::var("LLMQL_COLLECTIVE").is_ok_and(|v| v == "burn");
        if devices.len() > 1 && cuda.len() == devices.len() && distinct && multi_node.is_none() && !forced_burn {
            return nccl::NcclCollective::group(&cuda).into_iter().map(PeerCollective::Nccl).collect();
        }
    }
    BurnCollective::group(devices.len(), multi_node).into_iter().map(PeerCollective::Burn).collect()
}

impl Collective for PeerCollective {
    fn world_size(&self) -> usize {
        match self {
            PeerCollective::Burn(c) => c.world_size(),
            #[cfg(feature = "cuda")]
            PeerCollective::Nccl(c) => c.world_size(),
        }
    }
    fn rank(&self) -> usize {
        match self {
            PeerCollective::Burn(c) => c.rank(),
            #[cfg(feature = "cuda")]
            PeerCollective::Nccl(c) => c.rank(),
        }
    }
    fn all_reduce_sum<B: Backend, const D: usize>(&self, t: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            PeerCollective::Burn(c) => c.all_reduce_sum(t),
            #[cfg(feature = "cuda")]
            PeerCollective::Nccl(c) => c.all_reduce_sum(t),
        }
    }
}

#[cfg(feature = "cuda")]
mod nccl {
    use burn::backend::Cuda;
    use burn::tensor::backend::distributed::{DistributedBackend, ReduceOperation};
    use burn::tensor::backend::{Backend, DeviceId, DeviceOps};
    use burn::tensor::{Tensor, TensorPrimitive};
    use llmql_core::train::data_parallel::{BurnCollective, Collective};
    use std::any::Any;

    /// NCCL all-reduce between distinct CUDA devices of this process (one peer thread each). The
    /// communicator is created on the first call (every peer reaches it together). Tensors of
    /// another backend type (none in llmql's training loops) go through Burn's collective.
    pub struct NcclCollective {
        rank: usize,
        device_ids: Vec<DeviceId>,
        fallback: BurnCollective,
    }

    impl NcclCollective {
        pub fn group(cuda: &[usize]) -> Vec<NcclCollective> {
            let device_ids: Vec<DeviceId> = cuda.iter().map(|&i| burn::backend::cuda::CudaDevice::new(i).to_id()).collect();
            BurnCollective::group(cuda.len(), None)
                .into_iter()
                .enumerate()
                .map(|(rank, fallback)| NcclCollective { rank, device_ids: device_ids.clone(), fallback })
                .collect()
        }
    }

    impl Collective for NcclCollective {
        fn world_size(&self) -> usize {
            self.device_ids.len()
        }
        fn rank(&self) -> usize {
            self.rank
        }
        fn all_reduce_sum<B: Backend, const D: usize>(&self, t: Tensor<B, D>) -> Tensor<B, D> {
            let any: Box<dyn Any> = Box::new(t);
            match any.downcast::<Tensor<Cuda, D>>() {
                Ok(t) => {
                    let out = <Cuda as DistributedBackend>::all_reduce(t.into_primitive().tensor(), ReduceOperation::Sum, self.device_ids.clone()).resolve();
                    let out: Box<dyn Any> = Box::new(Tensor::<Cuda, D>::from_primitive(TensorPrimitive::Float(out)));
                    *out.downcast::<Tensor<B, D>>().expect("same type")
                }
                Err(any) => self.fallback.all_reduce_sum(*any.downcast::<Tensor<B, D>>().expect("same type")),
            }
        }
    }
}
