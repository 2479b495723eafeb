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

/// Handlers the `launch` registry gains from the GPU crate.
#[cfg(feature = "launch")]
const GPU_HANDLERS: &[&str] = &["blurgpu"];

/// Makes pipeline descriptions GPU-aware: registers `blurgpu` with `registry`, and a build
/// hook that, for a description using a GPU handler, registers the CPU↔GPU transfers with the
/// runtime so `testpattern ! blurgpu ! display` gets its upload and download inserted. The GPU
/// context is created on first use (a CPU-only pipeline never opens the GPU) and shared by
/// every pipeline built from this registry; without an adapter, building such a pipeline fails
/// with the adapter search's error.
#[cfg(feature = "launch")]
pub fn register_launch(registry: &mut crate::launch::Registry) {
    use std::sync::{Mutex, PoisonError};

    use crate::launch::{
        BuiltHandler, Direction, HandlerSpec, PipelineDesc, PropType, Properties, Value, port, prop,
    };
    use streamlib_ports::{DeliveryMode, HandlerError, MemoryCaps};

    // Only a context that opened is kept: a failure (no adapter yet, a lost device) is
    // retried by the next pipeline instead of being remembered for the registry's lifetime.
    let shared: Arc<Mutex<Option<GpuContext>>> = Arc::new(Mutex::new(None));
    let context = {
        let shared = Arc::clone(&shared);
        move || -> Result<GpuContext, HandlerError> {
            let mut slot = shared.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(ctx) = slot.as_ref().filter(|c| !c.is_lost()) {
                return Ok(ctx.clone());
            }
            let ctx = GpuContext::new()?;
            *slot = Some(ctx.clone());
            Ok(ctx)
        }
    };
    let for_blur = context.clone();
    registry.register(HandlerSpec {
        name: "blurgpu",
        summary: "Gaussian blur on the GPU (WGSL compute, separable, shared-memory tiles); GPU frames in and out",
        ports: vec![
            port(
                "video",
                Direction::Input,
                PortKind::Video,
                MemoryCaps::GPU,
                DeliveryMode::Latest,
                "GPU RGBA8/BGRA8 frames (an upload is inserted after a CPU source)",
            ),
            port(
                "video",
                Direction::Output,
                PortKind::Video,
                MemoryCaps::GPU,
                DeliveryMode::Latest,
                "blurred GPU frames (a download is inserted before a CPU sink)",
            ),
        ],
        properties: vec![
            prop(
                "sigma",
                PropType::Float {
                    min: 0.01,
                    max: 21.0,
                },
                Some("2"),
                false,
                "standard deviation in pixels",
            ),
            prop(
                "radius",
                PropType::Int { min: -1, max: 64 },
                Some("-1"),
                false,
                "kernel radius in pixels; -1 derives ceil(3 sigma)",
            ),
        ],
        factory: Arc::new(move |p: &Properties| {
            let ctx = for_blur()?;
            let radius = p
                .get("radius")
                .and_then(Value::as_int)
                .and_then(|r| u32::try_from(r).ok());
            Ok(BuiltHandler::fixed(BlurGpu::new(
                &ctx,
                p.float("sigma") as f32,
                radius,
            )?))
        }),
    });
    registry.add_build_hook(Arc::new(
        move |desc: &PipelineDesc, runtime: &mut StreamRuntime| {
            if desc
                .elements
                .iter()
                .any(|e| GPU_HANDLERS.contains(&e.handler.as_str()))
            {
                register_transfers(runtime, &context()?);
            }
            Ok(())
        },
    ));
}
