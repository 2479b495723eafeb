//! GPU on wgpu (`streamlib-gpu`, feature `gpu`): the context, GPU frames, the transfers and
//! the dispatcher, plus [`register_transfers`], which lets a runtime insert the transfers. The
//! GPU blur and compositor are `video`'s `Blur` and `Compositor` built `with_gpu`.

pub use streamlib_gpu::*;
pub use streamlib_launch::gpu::{GpuTransfers, register_transfers};
