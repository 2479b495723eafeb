//! The vocabulary handlers are written in: message types, typed ports with memory
//! capabilities, and the [`StreamHandler`] trait.
//!
//! Handler crates depend on this crate alone (plus their own libraries): it pulls in no
//! executor, no GPU API and no codec library. The runtime, in `streamlib-runtime`, wires ports,
//! negotiates memory, and calls handlers.
//!
//! ```
//! use streamlib_ports::*;
//! use streamlib_clock::{ClockInfo, ClockSourceId, Rational, TimedTick};
//!
//! /// Inverts the luma of gray frames.
//! struct Invert {
//!     input: InputPort<VideoFrame>,
//!     output: OutputPort<VideoFrame>,
//!     pool: FramePool,
//! }
//!
//! impl StreamHandler for Invert {
//!     fn ports(&self) -> Ports {
//!         Ports::new().input(&self.input).output(&self.output)
//!     }
//!     fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
//!         let Some(frame) = self.input.recv() else { return Ok(()) };
//!         let src = frame.cpu_bytes().ok_or_else(|| HandlerError::msg("expected a CPU frame"))?;
//!         // An empty pool skips the frame (counted on the output), never fails.
//!         let Some(mut out) = self.pool.acquire_for(&self.output) else { return Ok(()) };
//!         for (o, i) in out.iter_mut().zip(src) {
//!             *o = 255 - i;
//!         }
//!         self.output.write(self.pool.frame(out).with_tick(ctx.tick()));
//!         Ok(())
//!     }
//! }
//!
//! let layout = FrameLayout::new(4, 2, PixelFormat::Gray8)?;
//! let mut invert = Invert {
//!     input: InputPort::new("video", MemoryCaps::CPU),
//!     output: OutputPort::new("video", MemoryCaps::CPU),
//!     pool: FramePool::new("invert", layout, 4, 4)?,
//! };
//! // Wire by hand, as a runtime would.
//! let source = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
//! let sink = InputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
//! source.handle().erased().connect_to(&*invert.input.handle().erased())?;
//! invert.output.handle().erased().connect_to(&*sink.handle().erased())?;
//!
//! let frame = VideoFrame::cpu(layout, streamlib_buffers::PooledBuf::from_vec(vec![10; 8]))?;
//! source.write(frame);
//! let tick = TimedTick {
//!     timestamp: 0,
//!     frame_number: 0,
//!     clock_source_id: ClockSourceId::MANUAL,
//!     fps: Rational::fps(30),
//! };
//! invert.process(&mut ProcessContext::new("invert", tick)).map_err(|e| e.to_string())?;
//! assert_eq!(sink.recv().unwrap().cpu_bytes().unwrap()[0], 245);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod audio;
mod caps;
mod data;
mod error;
mod format;
mod handler;
mod limits;
mod memory;
mod message;
mod pool_output;
mod port;
mod video;

pub use audio::AudioBuffer;
pub use caps::{
    AudioCaps, Caps, Field, Follow, Formats, FrameRate, Mismatch, VideoCaps, VideoInfo,
};
pub use data::{
    DataMessage, Key, KeyEvent, KeyState, Modifiers, MouseButton, MouseEvent, MouseEventKind,
};
pub use error::{FrameError, PortError};
pub use format::{FrameLayout, PixelFormat};
pub use handler::{HandlerError, Ports, ProcessContext, StartContext, StreamHandler};
pub use limits::FrameLimits;
pub use memory::{MemoryCaps, MemorySpace};
pub use message::{Message, PortKind};
pub use pool_output::{POOL_MARGIN, PoolCounters, PoolProvider};
pub use port::{
    AnyInputPort, AnyOutputPort, DeliveryMode, InputPort, InputRef, OutputPort, OutputRef, PortId,
};
pub use video::{AlphaMode, FrameData, FramePool, GpuFrame, GpuResource, VideoFrame};

/// The names a handler author needs, for `use streamlib_ports::prelude::*`
/// (`streamlib::prelude` includes it).
pub mod prelude {
    pub use crate::{
        AlphaMode, AudioBuffer, AudioCaps, Caps, DataMessage, DeliveryMode, Follow, FrameLayout,
        FramePool, HandlerError, InputPort, KeyEvent, MemoryCaps, MemorySpace, MouseEvent,
        OutputPort, PixelFormat, Ports, ProcessContext, StartContext, StreamHandler, VideoCaps,
        VideoFrame,
    };
}
