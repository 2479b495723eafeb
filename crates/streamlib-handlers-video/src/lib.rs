//! Video handlers for streamlib: a test pattern source, a display window, a Gaussian blur, a
//! compositor, a 2D drawing surface, and the converters negotiation inserts (`Convert` for
//! pixel formats, `Scale` for sizes, `VideoRate` for frame rates).
//!
//! ## Pixel conventions
//! - Frames are `Rgba8` (bytes R, G, B, A) unless a handler says otherwise; `Bgra8` and `Gray8`
//!   are accepted where noted.
//! - Every frame states its alpha convention ([`AlphaMode`](streamlib_ports::AlphaMode)):
//!   `TestPattern` produces opaque frames marked `Straight`; `Drawing` produces `Premultiplied`
//!   frames (what its 2D rasteriser works in); the `Compositor` accepts either per layer and
//!   produces `Straight`. Handlers that do not blend (blur on opaque frames, display) pass the
//!   mode through.
//! - All handlers here declare `[cpu]` ports, except `Blur::with_gpu` and
//!   `Compositor::with_gpu` (feature `gpu`, through `streamlib-gpu`): `[cpu, gpu]` ports, and
//!   each frame takes the path its negotiated memory says.
//! - Outputs come from pre-allocated pools: steady-state processing allocates nothing.
//! - Every port declares its format caps (see [`Caps`](streamlib_ports::Caps)): sources their
//!   fixed format and size, transforms the formats they process and which fields their output
//!   follows, so the runtime can negotiate a graph before its first frame and insert a
//!   `Convert`, `Scale` or `VideoRate` where two ports disagree.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod blur;
mod capture;
mod compositor;
mod convert;
#[cfg(feature = "display")]
mod display;
mod drawing;
mod error;
mod identity;
mod null_sink;
mod scale;
pub mod stamp;
mod test_pattern;
mod video_rate;

pub use blur::{
    BLUR_FORMATS, Blur, BlurConfig, BlurScratch, GaussianKernel, MAX_RADIUS, blur_frame,
};
pub use capture::{CaptureHandle, FrameCapture};
pub use compositor::{
    Compositor, CompositorConfig, CompositorControls, LayerConfig, MissingLayer, composite_over,
    unpremultiply,
};
pub use convert::Convert;
#[cfg(feature = "display")]
pub use display::{Display, DisplayConfig, DisplayScale, DisplayStats, display_available};
pub use drawing::{
    DrawContext, Drawing, DrawingConfig, DrawingVars, FontSource, LineMetrics, MAX_DRAWING_SIDE,
    VarValue,
};
pub use error::{MAX_FRAME_SIDE, VideoError};
pub use identity::Identity;
pub use null_sink::NullSink;
pub use scale::{SCALE_FORMATS, Scale, ScaleConfig, ScaleMethod};
pub use test_pattern::{MovingBox, Pattern, TestPattern, TestPatternConfig};
/// The 2D rasteriser `Drawing` callbacks draw with (re-exported so versions always match).
pub use tiny_skia;
pub use video_rate::{VideoRate, VideoRateStats};

/// The video handlers and their configurations, for `use streamlib_handlers_video::prelude::*`
/// (`streamlib::prelude` includes it with the facade's `video` feature).
pub mod prelude {
    pub use crate::{
        Blur, BlurConfig, Compositor, CompositorConfig, Convert, Drawing, DrawingConfig,
        FrameCapture, Identity, LayerConfig, NullSink, Pattern, Scale, ScaleConfig, TestPattern,
        TestPatternConfig, VideoRate,
    };
    #[cfg(feature = "display")]
    pub use crate::{Display, DisplayConfig};
}
