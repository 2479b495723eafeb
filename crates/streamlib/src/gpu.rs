//! GPU on wgpu (`streamlib-gpu`, feature `gpu`), and the hook that lets the runtime insert its
//! transfers.

pub use streamlib_gpu::*;

use std::sync::Arc;

use streamlib_ports::{MemorySpace, PortKind};
use streamlib_runtime::{StreamRuntime, TransferHandler};

/// The counters of every transfer [`register_transfers`] lets the runtime insert: all uploads
/// count into one handle, all downloads into another (with
/// [`TransferStats::handlers`] telling how many were inserted).
#[derive(Debug, Clone, Default)]
pub struct GpuTransfers {
    /// What the inserted `CpuToGpu` transfers moved.
    pub uploads: TransferStats,
    /// What the inserted `GpuToCpu` transfers moved.
    pub downloads: TransferStats,
}

/// Registers [`CpuToGpu`] and [`GpuToCpu`] for video with `runtime`, so that `connect`
/// inserts them where one port is `[cpu]` and the other `[gpu]` (with a warning: every frame
/// crosses the bus). They run on the context's [`GpuDispatcher`], ordered with the GPU
/// handlers. Returns the counters they will report into.
///
/// ```no_run
/// use streamlib::prelude::*;
/// use streamlib::gpu::{GpuContext, register_transfers};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ctx = GpuContext::new()?;
/// let mut runtime = StreamRuntime::new(SoftwareClock::new(Rational::fps(30)));
/// let transfers = register_transfers(&mut runtime, &ctx);
/// // ... add a CPU source, a GPU handler, a CPU sink, and connect them: both transfers go in.
/// # let _ = transfers;
/// # Ok(()) }
/// ```
pub fn register_transfers(runtime: &mut StreamRuntime, ctx: &GpuContext) -> GpuTransfers {
    let transfers = GpuTransfers::default();
    let registry = runtime.transfers_mut();
    let (up_ctx, up_stats) = (ctx.clone(), transfers.uploads.clone());
    registry.register(
        PortKind::Video,
        MemorySpace::Cpu,
        MemorySpace::Gpu,
        "CpuToGpu",
        Arc::new(move || {
            let handler = CpuToGpu::with_stats(&up_ctx, up_stats.clone());
            let (input, output) = (handler.input().erased(), handler.output().erased());
            Ok(TransferHandler {
                handler: Box::new(handler),
                input,
                output,
                dispatcher: Some(up_ctx.dispatcher().as_dyn()),
            })
        }),
    );
    let (down_ctx, down_stats) = (ctx.clone(), transfers.downloads.clone());
    registry.register(
        PortKind::Video,
        MemorySpace::Gpu,
        MemorySpace::Cpu,
        "GpuToCpu",
        Arc::new(move || {
            let handler = GpuToCpu::with_stats(&down_ctx, down_stats.clone());
            let (input, output) = (handler.input().erased(), handler.output().erased());
            Ok(TransferHandler {
                handler: Box::new(handler),
                input,
                output,
                dispatcher: Some(down_ctx.dispatcher().as_dyn()),
            })
        }),
    );
    transfers
}
