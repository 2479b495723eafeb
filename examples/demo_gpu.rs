//! The GPU demo: TestPattern (CPU) → Blur (GPU) → Display (CPU), 640×480 at 30 fps. The blur
//! is the CPU one's GPU path, declared GPU-only (`Blur::with_gpu_memory(.., MemoryCaps::GPU,
//! ..)`), so the runtime inserts the two transfers itself (`CpuToGpu` before the blur,
//! `GpuToCpu` after it): the blur's ports are `[gpu]` and the others `[cpu]`. In pipeline
//! text: `streamlib launch "testpattern ! blur memory=gpu ! display"`.
//!
//! With a display it opens a window (Esc or closing it stops). Without one, or with
//! `--headless`, the pipeline ends in a frame capture: PNG snapshots and a stats summary go to
//! `--out` (default `out/demo_gpu`), and the exit status is 0 only when the pipeline held its
//! frame rate. The adapter comes from the environment: `WGPU_BACKEND` (vulkan, gl) and
//! `STREAMLIB_GPU_ADAPTER` (a substring of the adapter name, e.g. `llvmpipe`).
//!
//! Run: `cargo run --release --example demo_gpu --features gpu -- --headless`.
#![allow(clippy::print_stdout, reason = "a demo reports where its output went")]

mod support;

use streamlib::gpu::{GpuContext, register_transfers};
use streamlib::prelude::*;
use streamlib::video::{Blur, BlurConfig, Pattern, TestPattern, TestPatternConfig};
use support::{DemoOptions, init_logging, run_to_sink};

fn main() -> anyhow::Result<()> {
    init_logging();
    let options = DemoOptions::from_args((640, 480), "out/demo_gpu")?;
    let ctx = GpuContext::new()?;
    println!(
        "GPU: {} ({:?}, {:?})",
        ctx.adapter_name(),
        ctx.info().backend,
        ctx.info().device_type
    );
    let mut runtime = StreamRuntime::new(options.clock());
    let transfers = register_transfers(&mut runtime, &ctx);

    let pattern = TestPattern::new(TestPatternConfig {
        width: options.width,
        height: options.height,
        pattern: Pattern::SmpteBars,
        moving_box: true,
        ..TestPatternConfig::default()
    })?;
    let config = BlurConfig {
        sigma: 2.0,
        radius: None,
    };
    let blur = Blur::with_gpu_memory(config, MemoryCaps::GPU, &ctx)?;
    let (pattern_out, blur_in, blur_out) = (pattern.output(), blur.input(), blur.output());
    runtime.add_stream(Stream::new("pattern", pattern))?;
    // GPU handlers share the context's one submission thread.
    runtime.add_stream(Stream::new("blur", blur).dispatcher(ctx.dispatcher().as_dyn()))?;
    let upload = runtime.connect(&pattern_out, &blur_in)?;
    println!(
        "pattern -> blur: inserted {}",
        upload.transfer.as_deref().unwrap_or("nothing")
    );

    // `run_to_sink` connects the blur to a CPU sink: the runtime inserts the readback there.
    let result = run_to_sink(runtime, &blur_out, &options, "demo_gpu");
    println!(
        "transfers: uploaded {} frames ({} bytes), read back {} frames ({} bytes)",
        transfers.uploads.frames(),
        transfers.uploads.bytes(),
        transfers.downloads.frames(),
        transfers.downloads.bytes()
    );
    result
}
