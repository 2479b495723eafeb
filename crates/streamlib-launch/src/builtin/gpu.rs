//! The GPU in pipelines (feature `gpu`): the CPU↔GPU transfers a runtime inserts where a GPU
//! port meets a CPU one ([`register_transfers`]), one GPU context shared by a registry's
//! pipelines and opened only for a pipeline that asks for the GPU, and, with `video`,
//! `blur memory=gpu|any`.

use std::sync::{Arc, Mutex, PoisonError};

use streamlib_gpu::{CpuToGpu, GpuContext, GpuError, GpuToCpu, TransferStats};
use streamlib_ports::{AnyInputPort, AnyOutputPort, MemorySpace, PortKind, StreamHandler};
use streamlib_runtime::{StreamRuntime, TransferHandler};

use crate::{PipelineDesc, Registry};

/// The counters of every transfer [`register_transfers`] lets the runtime insert: all uploads
/// count into one handle, all downloads into another (with [`TransferStats::handlers`]
/// telling how many were inserted).
#[derive(Debug, Clone, Default)]
pub struct GpuTransfers {
    /// What the inserted `CpuToGpu` transfers moved.
    pub uploads: TransferStats,
    /// What the inserted `GpuToCpu` transfers moved.
    pub downloads: TransferStats,
}

/// Registers [`CpuToGpu`] and [`GpuToCpu`] for video with `runtime`, so that negotiation
/// inserts them where one port is `[cpu]` and the other `[gpu]` (with a warning: every frame
/// crosses the bus). They run on the context's `GpuDispatcher`, ordered with the GPU
/// handlers. Returns the counters they will report into.
///
/// ```no_run
/// use streamlib_clock::{Rational, SoftwareClock};
/// use streamlib_gpu::GpuContext;
/// use streamlib_launch::gpu::register_transfers;
/// use streamlib_runtime::StreamRuntime;
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
    let (up, down) = (transfers.uploads.clone(), transfers.downloads.clone());
    register_one(runtime, ctx, MemorySpace::Cpu, "CpuToGpu", move |ctx| {
        let handler = CpuToGpu::with_stats(ctx, up.clone());
        let ports = (handler.input().erased(), handler.output().erased());
        (Box::new(handler), ports)
    });
    register_one(runtime, ctx, MemorySpace::Gpu, "GpuToCpu", move |ctx| {
        let handler = GpuToCpu::with_stats(ctx, down.clone());
        let ports = (handler.input().erased(), handler.output().erased());
        (Box::new(handler), ports)
    });
    transfers
}

/// A transfer's handler and its `(input, output)` ports.
type TransferParts = (
    Box<dyn StreamHandler>,
    (Arc<dyn AnyInputPort>, Arc<dyn AnyOutputPort>),
);

/// Registers the video transfer out of `from` (into the other memory) that `make` builds, on
/// the context's dispatcher.
fn register_one(
    runtime: &mut StreamRuntime,
    ctx: &GpuContext,
    from: MemorySpace,
    name: &'static str,
    make: impl Fn(&GpuContext) -> TransferParts + Send + Sync + 'static,
) {
    let to = match from {
        MemorySpace::Cpu => MemorySpace::Gpu,
        MemorySpace::Gpu => MemorySpace::Cpu,
    };
    let ctx = ctx.clone();
    runtime.transfers_mut().register(
        PortKind::Video,
        from,
        to,
        name,
        Arc::new(move || {
            let (handler, (input, output)) = make(&ctx);
            Ok(TransferHandler {
                handler,
                input,
                output,
                dispatcher: Some(ctx.dispatcher().as_dyn()),
            })
        }),
    );
}

/// One GPU context for every pipeline a registry builds, opened on first use: a CPU-only
/// pipeline never opens the GPU. Only a context that opened is kept: a failure (no adapter
/// yet, a lost device) is tried again by the next pipeline instead of being remembered.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedContext(Arc<Mutex<Option<GpuContext>>>);

impl SharedContext {
    /// The shared context, opening it if there is none or the last one was lost.
    pub(crate) fn get(&self) -> Result<GpuContext, GpuError> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ctx) = slot.as_ref().filter(|c| !c.is_lost()) {
            return Ok(ctx.clone());
        }
        let ctx = GpuContext::new()?;
        *slot = Some(ctx.clone());
        Ok(ctx)
    }
}

/// Whether an element of `desc` asks for GPU memory (`blur memory=gpu|any`).
fn uses_gpu(desc: &PipelineDesc) -> bool {
    desc.elements.iter().any(|e| {
        e.handler == "blur"
            && e.properties
                .get("memory")
                .is_some_and(|m| m.as_str() != "cpu")
    })
}

/// Adds the build hook that registers the transfers, on the shared context, with the runtime
/// of a pipeline that uses the GPU.
pub(super) fn register(registry: &mut Registry, shared: &SharedContext) {
    let shared = shared.clone();
    registry.add_build_hook(Arc::new(
        move |desc: &PipelineDesc, runtime: &mut StreamRuntime| {
            if uses_gpu(desc) {
                register_transfers(runtime, &shared.get()?);
            }
            Ok(())
        },
    ));
}
