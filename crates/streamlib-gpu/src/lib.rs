//! GPU support for streamlib, on wgpu: a shared device context, pooled GPU frames, the
//! CPU↔GPU transfer handlers, a GPU dispatcher, and the Gaussian blur and compositing kernels
//! with which `streamlib-handlers-video`'s `Blur` and `Compositor` reproduce their CPU paths
//! bit for bit on the GPU. The handlers live there; this crate holds no second blur.
//!
//! ## Pieces
//! - [`GpuContext`]: instance, adapter, device and queue behind one `Arc`. Chosen headless from
//!   the environment (`WGPU_BACKEND` = `vulkan`, `gl`, …; [`ADAPTER_ENV`] = a substring of the
//!   adapter name), or wrapped around a wgpu application's own device with
//!   [`GpuContext::from_wgpu`]. Every GPU handler of a runtime shares one. It registers the
//!   device-lost callback (later calls fail with [`GpuError::DeviceLost`]), checks sizes
//!   against the device limits ([`GpuError::TooLarge`] names the adapter and the limit), and
//!   wraps pipeline creation and submissions in error scopes, so a shader that does not compile
//!   is [`GpuError::Shader`], not a panic.
//! - [`GpuTexture`] implements `streamlib_ports::GpuResource`: a frame's pixels in an RGBA8
//!   texture. [`GpuFramePool`] pre-allocates them (the GPU ring buffer): acquire, fill,
//!   publish as a `VideoFrame`; the texture returns when the last frame clone drops. Nothing
//!   is created at steady state ([`GpuFramePool::textures_created`] counts).
//! - [`CpuToGpu`] and [`GpuToCpu`]: the transfer handlers the runtime inserts where port
//!   capabilities do not overlap (the facade's `streamlib::gpu::register_transfers` registers
//!   them), each counting what it moved in a shared [`TransferStats`].
//! - [`BlurKernel`] (run on [`BlurWeights`] the CPU blur computes) and [`CompositeKernel`]:
//!   WGSL compute kernels.
//!
//! ## Where work runs, and how completion is awaited
//! A context's GPU handlers should share its [`GpuDispatcher`] ([`GpuContext::dispatcher`]):
//! one submission thread, so encoding and submission are ordered across handlers, and wgpu
//! executes submissions in order, so a texture written by one handler is complete by the time
//! the next handler's work reads it: no handler waits for the GPU between GPU handlers.
//! Completion is awaited only where the CPU needs the bytes (readback), and never by spinning:
//! the context's poller thread is parked until a submission wakes it (an atomic flag and an
//! `unpark`, no lock on the submit path), then blocks in
//! `device.poll(PollType::wait_indefinitely())` until the work is done, which runs the
//! `map_async` callbacks; then it parks again. [`GpuToCpu`] keeps a ring of three staging
//! buffers: it copies frame N into one and asks for its map, and emits frame N − 1, mapped in
//! the meantime: one tick of latency, and no stall of the tick that produced the frame.
//!
//! ## Tests
//! GPU tests run for real, on lavapipe (Mesa's software Vulkan) where there is no GPU. Use
//! [`GpuContext::for_tests`]: without an adapter the test fails, unless
//! `STREAMLIB_ALLOW_NO_GPU=1`, which skips it with a loud banner.
//!
//! ```no_run
//! use streamlib_gpu::{GpuContext, GpuFramePool, read_frame};
//! use streamlib_ports::{FrameLayout, PixelFormat};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = GpuContext::new()?; // WGPU_BACKEND / STREAMLIB_GPU_ADAPTER pick the adapter
//! println!("on {}", ctx.adapter_name());
//! let pool = GpuFramePool::new(&ctx, "frames", 640, 480, 4, 8)?;
//! let frame = pool.acquire()?.into_frame(FrameLayout::new(640, 480, PixelFormat::Rgba8)?);
//! let bytes = read_frame(&ctx, &frame)?; // waits: for tests and snapshots
//! assert_eq!(bytes.len(), 640 * 480 * 4);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod blur;
mod composite;
mod context;
mod dispatcher;
mod error;
mod frame;
mod readback;
mod transfer;

pub use blur::{BlurKernel, BlurWeights, MAX_BLUR_RADIUS, blur_gpu_frame};
pub use composite::{CompositeKernel, GpuLayer, MAX_GPU_LAYERS};
pub use context::{ADAPTER_ENV, ALLOW_NO_GPU_ENV, GpuContext, GpuOptions};
pub use dispatcher::GpuDispatcher;
pub use error::GpuError;
pub use frame::{GPU_FRAME_FORMAT, GPU_FRAME_USAGE, GpuFramePool, GpuTexture, GpuTextureLease};
pub use readback::{FrameUploader, ReadbackRing, read_frame};
pub use transfer::{CpuToGpu, GpuToCpu, TransferStats};
/// The wgpu this crate is built on (re-exported so versions always match).
pub use wgpu;

/// The GPU names most programs need, for `use streamlib_gpu::prelude::*` (`streamlib::prelude`
/// includes it with the facade's `gpu` feature).
pub mod prelude {
    pub use crate::{CpuToGpu, GpuContext, GpuDispatcher, GpuError, GpuFramePool, GpuToCpu};
}
