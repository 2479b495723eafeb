//! `testpattern`, `blur`, `compositor`, `drawing`, `display`, `null`, and the converters
//! negotiation may insert: `convert`, `scale`, `videorate` ([`register_converters`]).

use std::fmt::Write as _;
use std::sync::Arc;

use streamlib_handlers_video::tiny_skia::Color;
use streamlib_handlers_video::{
    Blur, BlurConfig, Compositor, CompositorConfig, Convert, Drawing, DrawingConfig, FontSource,
    LayerConfig, MAX_FRAME_SIDE, MAX_RADIUS, MissingLayer, NullSink, Pattern, SCALE_FORMATS, Scale,
    ScaleConfig, ScaleMethod, TestPattern, TestPatternConfig, VarValue, VideoRate,
};
use streamlib_ports::{
    Caps, DeliveryMode, HandlerError, MemoryCaps, PixelFormat, PortKind, VideoCaps,
};
use streamlib_runtime::{Conversion, ConverterRegistry, TransferHandler};

use crate::registry::{BuiltHandler, Direction, HandlerSpec, Properties, port, prop};
use crate::value::{PropType, Value};
use crate::{Access, Registry};

const SIZE: PropType = PropType::Size {
    max: MAX_FRAME_SIDE,
};

const VIDEO_OUT: crate::PortSpec = port(
    "video",
    Direction::Output,
    PortKind::Video,
    MemoryCaps::CPU,
    DeliveryMode::Latest,
    "RGBA8 frames",
);

const VIDEO_IN: crate::PortSpec = port(
    "video",
    Direction::Input,
    PortKind::Video,
    MemoryCaps::CPU,
    DeliveryMode::Latest,
    "frames in",
);

pub(super) fn register(
    registry: &mut Registry,
    #[cfg(feature = "gpu")] gpu: &super::gpu::SharedContext,
) {
    registry.register(test_pattern());
    registry.register(blur(
        #[cfg(feature = "gpu")]
        gpu,
    ));
    registry.register(compositor());
    registry.register(drawing());
    registry.register(null());
    registry.register(identity());
    registry.register(convert());
    registry.register(scale());
    registry.register(video_rate());
    #[cfg(feature = "display")]
    registry.register(display());
}

fn test_pattern() -> HandlerSpec {
    HandlerSpec {
        name: "testpattern",
        summary: "Generates test frames: SMPTE bars, gradient, checkerboard, solid colours",
        ports: vec![VIDEO_OUT],
        properties: vec![
            prop("size", SIZE, Some("1280x720"), false, "frame size"),
            prop(
                "pattern",
                PropType::Enum(&[
                    "smpte",
                    "gradient",
                    "black",
                    "white",
                    "checkerboard",
                    "flash",
                ]),
                Some("smpte"),
                false,
                "what to draw (flash: white on the first frame at or after each clock second, \
                 black otherwise; lip sync against audiotestsrc wave=ticks)",
            ),
            prop(
                "cell",
                PropType::Int { min: 1, max: 16384 },
                Some("64"),
                false,
                "checkerboard square size in pixels",
            ),
            prop(
                "moving-box",
                PropType::Bool,
                Some("true"),
                false,
                "draw a box that moves one step per frame (shows motion and dropped frames)",
            ),
            prop(
                "format",
                PropType::Enum(&["rgba8", "uyvy"]),
                Some("rgba8"),
                false,
                "pixel format of the frames (uyvy: 4:2:2 BT.709, what networksend's 4:2:2 takes, without a convert)",
            ),
            prop(
                "stamp",
                PropType::Bool,
                Some("false"),
                false,
                "draw the frame number and the wall-clock time as a machine-readable strip in the \
                 top rows (glass-to-glass latency; see streamlib_handlers_video::stamp)",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let (width, height) = p.size("size");
            let pattern = match p.text("pattern") {
                "gradient" => Pattern::Gradient,
                "black" => Pattern::Black,
                "white" => Pattern::White,
                "flash" => Pattern::Flash,
                "checkerboard" => Pattern::Checkerboard {
                    cell: u32::try_from(p.int("cell")).unwrap_or(64),
                },
                _ => Pattern::SmpteBars,
            };
            let handler = TestPattern::new(TestPatternConfig {
                width,
                height,
                pattern,
                moving_box: p.bool("moving-box"),
                format: if p.text("format") == "uyvy" {
                    PixelFormat::Uyvy
                } else {
                    PixelFormat::Rgba8
                },
            })?
            .with_stamp(p.bool("stamp"));
            Ok(BuiltHandler::fixed(handler))
        }),
    }
}

fn blur_config(p: &Properties) -> BlurConfig {
    BlurConfig {
        sigma: p.float("sigma") as f32,
        radius: p
            .get("radius")
            .and_then(Value::as_int)
            .filter(|r| *r > 0)
            .and_then(|r| u32::try_from(r).ok()),
    }
}

/// `blur`'s `memory` property (feature `gpu`): which memory its ports declare.
#[cfg(feature = "gpu")]
fn blur_memory() -> crate::PropertySpec {
    prop(
        "memory",
        PropType::Enum(&["cpu", "gpu", "any"]),
        Some("cpu"),
        false,
        "cpu: host frames only; gpu: GPU frames only (the runtime inserts CpuToGpu / GpuToCpu \
         beside CPU neighbours); any: either, following the negotiated memory. The GPU result \
         equals the CPU result bit for bit",
    )
}

/// A `blur` with the ports its `memory` property asks for, opening the GPU on demand.
#[cfg(feature = "gpu")]
fn make_blur(
    config: BlurConfig,
    p: &Properties,
    gpu: &super::gpu::SharedContext,
) -> Result<Blur, streamlib_handlers_video::VideoError> {
    let memory = match p.text("memory") {
        "gpu" => MemoryCaps::GPU,
        "any" => MemoryCaps::CPU_GPU,
        _ => return Blur::new(config),
    };
    let gpu = gpu.clone();
    Blur::with_gpu_on_demand(config, memory, move || gpu.get())
}

fn blur(#[cfg(feature = "gpu")] gpu: &super::gpu::SharedContext) -> HandlerSpec {
    #[cfg(feature = "gpu")]
    let gpu = gpu.clone();
    HandlerSpec {
        name: "blur",
        summary: "Gaussian blur (separable, fixed point, SIMD); RGBA8, BGRA8, Gray8, I420",
        ports: vec![VIDEO_IN, VIDEO_OUT],
        properties: vec![
            prop(
                "sigma",
                PropType::Float {
                    min: 0.01,
                    max: f64::from(MAX_RADIUS / 3),
                },
                Some("2"),
                true,
                "standard deviation in pixels",
            ),
            prop(
                "radius",
                PropType::Int {
                    min: -1,
                    max: i64::from(MAX_RADIUS),
                },
                Some("-1"),
                true,
                "kernel radius in pixels; -1 or 0 derives ceil(3 sigma)",
            ),
            #[cfg(feature = "gpu")]
            blur_memory(),
        ],
        factory: Arc::new(move |p: &Properties| {
            let config = blur_config(p);
            #[cfg(feature = "gpu")]
            let handler = make_blur(config, p, &gpu)?;
            #[cfg(not(feature = "gpu"))]
            let handler = Blur::new(config)?;
            // The last config applied, so that changing sigma keeps the radius and back.
            let mut current = config;
            Ok(BuiltHandler::live(
                handler,
                move |blur: &mut Blur, name, value| {
                    let mut next = current;
                    match name {
                        "sigma" => next.sigma = value.as_float().unwrap_or(2.0) as f32,
                        _ => {
                            next.radius = value
                                .as_int()
                                .filter(|r| *r > 0)
                                .and_then(|r| u32::try_from(r).ok());
                        }
                    }
                    blur.set_config(next)?;
                    current = next;
                    Ok(())
                },
            ))
        }),
    }
}

fn compositor() -> HandlerSpec {
    HandlerSpec {
        name: "compositor",
        summary: "Stacks layer inputs into one RGBA8 frame, with position, opacity and order",
        ports: vec![
            port(
                "layer<N>",
                Direction::Input,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Latest,
                "layer N (0 ..= layers-1), RGBA8 or BGRA8, optional",
            )
            .numbered_by("layers")
            .optional(),
            VIDEO_OUT,
        ],
        properties: vec![
            prop("size", SIZE, Some("1920x1080"), false, "output size"),
            prop(
                "layers",
                PropType::Int { min: 1, max: 64 },
                Some("4"),
                false,
                "number of layer inputs",
            ),
            prop(
                "background",
                PropType::Color,
                Some("000000ff"),
                false,
                "canvas colour under every layer",
            ),
            prop(
                "missing",
                PropType::Enum(&["reuse", "skip"]),
                Some("reuse"),
                false,
                "a layer with no new frame: draw its last one again, or leave it out",
            ),
            prop(
                "layer<N>.x",
                PropType::Int {
                    min: -65536,
                    max: 65536,
                },
                None,
                true,
                "layer N's left edge on the canvas",
            ),
            prop(
                "layer<N>.y",
                PropType::Int {
                    min: -65536,
                    max: 65536,
                },
                None,
                true,
                "layer N's top edge on the canvas",
            ),
            prop(
                "layer<N>.opacity",
                PropType::Float { min: 0.0, max: 1.0 },
                None,
                true,
                "layer N's opacity, multiplied into its alpha",
            ),
            prop(
                "layer<N>.z",
                PropType::Int {
                    min: -1000,
                    max: 1000,
                },
                None,
                true,
                "layer N's stacking order (higher on top)",
            ),
            prop(
                "layer<N>.visible",
                PropType::Bool,
                None,
                true,
                "whether layer N is drawn",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let (width, height) = p.size("size");
            let mut compositor = Compositor::new(CompositorConfig {
                width,
                height,
                layers: usize::try_from(p.int("layers")).unwrap_or(4),
                background: p.color("background"),
                missing: if p.text("missing") == "skip" {
                    MissingLayer::Skip
                } else {
                    MissingLayer::ReuseLast
                },
            })?;
            for (name, value) in p
                .iter()
                .filter(|(n, _)| n.starts_with("layer") && n.contains('.'))
            {
                set_layer_property(&mut compositor, name, value)?;
            }
            Ok(BuiltHandler::live(
                compositor,
                |c: &mut Compositor, name, value| set_layer_property(c, name, value),
            ))
        }),
    }
}

/// Applies `layer<N>.<field>`.
fn set_layer_property(
    compositor: &mut Compositor,
    name: &str,
    value: &Value,
) -> Result<(), HandlerError> {
    let (layer, field) = name
        .strip_prefix("layer")
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(|| HandlerError::msg(format!("`{name}` is not a layer property")))?;
    let index: usize = layer
        .parse()
        .map_err(|_| HandlerError::msg(format!("`{name}`: `{layer}` is not a layer number")))?;
    let controls = compositor.controls();
    let current: LayerConfig = controls.layer(index)?;
    let int = || i32::try_from(value.as_int().unwrap_or(0)).unwrap_or(0);
    let next = match field {
        "x" => LayerConfig {
            x: int(),
            ..current
        },
        "y" => LayerConfig {
            y: int(),
            ..current
        },
        "z" => LayerConfig {
            z: int(),
            ..current
        },
        "opacity" => LayerConfig {
            opacity: value.as_float().unwrap_or(1.0) as f32,
            ..current
        },
        "visible" => LayerConfig {
            visible: value.as_bool().unwrap_or(true),
            ..current
        },
        other => {
            return Err(HandlerError::msg(format!(
                "`{name}`: layers have no `{other}`"
            )));
        }
    };
    compositor.set_layer(index, next)?;
    Ok(())
}

fn drawing() -> HandlerSpec {
    HandlerSpec {
        name: "drawing",
        summary: "Draws a line of text (with {frame}, {time}, {fps} and variables) on a clear canvas or over its input",
        ports: vec![
            port(
                "video",
                Direction::Input,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Latest,
                "optional background, RGBA8 of the drawing's size",
            )
            .optional(),
            port(
                "vars",
                Direction::Input,
                PortKind::Data,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "optional `name=value` lines setting variables",
            )
            .optional(),
            port(
                "video",
                Direction::Output,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Latest,
                "premultiplied RGBA8 frames",
            ),
        ],
        properties: vec![
            prop("size", SIZE, Some("1280x720"), false, "canvas size"),
            prop(
                "text",
                PropType::Text,
                Some("frame {frame}  {time} s"),
                true,
                "the line drawn; {frame}, {time}, {fps} and {NAME} (a variable) are replaced",
            ),
            prop(
                "x",
                PropType::Float {
                    min: -16384.0,
                    max: 16384.0,
                },
                Some("16"),
                true,
                "left edge of the text",
            ),
            prop(
                "y",
                PropType::Float {
                    min: -16384.0,
                    max: 16384.0,
                },
                Some("48"),
                true,
                "baseline of the text",
            ),
            prop(
                "font-size",
                PropType::Float {
                    min: 1.0,
                    max: 4096.0,
                },
                Some("32"),
                true,
                "pixels per em",
            ),
            prop(
                "color",
                PropType::Color,
                Some("ffffffff"),
                true,
                "text colour (straight RGBA)",
            ),
            prop(
                "clear",
                PropType::Color,
                Some("00000000"),
                false,
                "canvas colour without a background input (premultiplied RGBA)",
            ),
            prop(
                "font",
                PropType::Path,
                Some("system"),
                false,
                "a TTF/OTF file, or `system` for DejaVu Sans",
            )
            .access(Access::Read)
            .no_file("system"),
            prop(
                "var.<NAME>",
                PropType::Text,
                None,
                true,
                "sets variable NAME, shown where the text says {NAME}",
            ),
        ],
        factory: Arc::new(drawing_factory),
    }
}

fn drawing_factory(p: &Properties) -> Result<BuiltHandler, HandlerError> {
    let (width, height) = p.size("size");
    let font = match p.text("font") {
        "system" => FontSource::System,
        path => FontSource::Path(path.into()),
    };
    let config = DrawingConfig::new(width, height)
        .with_font(font)
        .with_clear(p.color("clear"));
    let template = p.text("text").to_owned();
    let (x, y, size) = (p.float("x"), p.float("y"), p.float("font-size"));
    let color = p.color("color");
    let mut line = String::with_capacity(256);
    let mut var_name = String::with_capacity(32);
    let drawing = Drawing::new(config, move |canvas, ctx| {
        let color = ctx
            .text("color")
            .and_then(|c| PropType::Color.parse(c).ok())
            .and_then(|v| v.as_color())
            .unwrap_or(color);
        line.clear();
        expand(
            ctx.text("text").unwrap_or(&template),
            &mut line,
            &mut var_name,
            ctx,
        );
        let (x, y, size) = (
            ctx.number("x", x) as f32,
            ctx.number("y", y) as f32,
            ctx.number("font-size", size) as f32,
        );
        let [r, g, b, a] = color;
        ctx.draw_text(canvas, &line, x, y, size, Color::from_rgba8(r, g, b, a));
        Ok(())
    })?;
    let vars = drawing.vars();
    // Variables given at launch (`var.speed=3`) are there from the first frame.
    for (name, value) in p.iter() {
        if let Some(var) = name.strip_prefix("var.") {
            vars.set(var, VarValue::parse(&value.to_string()));
        }
    }
    Ok(BuiltHandler::live(drawing, move |_, name, value| {
        let name = name.strip_prefix("var.").unwrap_or(name);
        let value = match value {
            Value::Float(f) => VarValue::Number(*f),
            Value::Int(i) => VarValue::Number(*i as f64),
            Value::Bool(b) => VarValue::Bool(*b),
            other => VarValue::Text(other.to_string()),
        };
        vars.set(name, value);
        Ok(())
    }))
}

/// Replaces `{frame}`, `{time}`, `{fps}` and `{NAME}` in `template`.
fn expand(
    template: &str,
    out: &mut String,
    name: &mut String,
    ctx: &streamlib_handlers_video::DrawContext<'_>,
) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return;
        };
        name.clear();
        name.push_str(&rest[open + 1..open + close]);
        let _ = match name.as_str() {
            "frame" => write!(out, "{}", ctx.frame_number()),
            "time" => write!(out, "{:.2}", ctx.time_s()),
            "fps" => write!(out, "{:.2}", ctx.fps()),
            var => match ctx.var(var) {
                Some(value) => write!(out, "{value}"),
                None => write!(out, "{{{var}}}"),
            },
        };
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
}

fn convert() -> HandlerSpec {
    HandlerSpec {
        name: "convert",
        summary: "Converts pixel formats: RGBA8/BGRA8 to UYVY (4:2:2) or I420 (4:2:0) and back, NV12 to RGB; BT.709 limited range",
        ports: vec![VIDEO_IN, VIDEO_OUT],
        properties: vec![prop(
            "format",
            PropType::Enum(&["rgba8", "bgra8", "uyvy", "i420"]),
            None,
            false,
            "the output pixel format (frames already in it pass through by reference)",
        )],
        factory: Arc::new(|p: &Properties| {
            let format = PixelFormat::ALL
                .into_iter()
                .find(|f| f.as_str() == p.text("format"))
                .unwrap_or(PixelFormat::Rgba8);
            Ok(BuiltHandler::fixed(Convert::new(format)?))
        }),
    }
}

/// The formats `convert` takes and makes (not every pair: UYVY and I420 convert to RGB only).
const CONVERT_FORMATS: [PixelFormat; 4] = [
    PixelFormat::Rgba8,
    PixelFormat::Bgra8,
    PixelFormat::Uyvy,
    PixelFormat::I420,
];

/// Registers the converters negotiation may insert where a link's caps do not meet:
/// `convert` for the pixel format (to the format the target caps fix), `scale` for the size
/// (bilinear, to the target's size), `videorate` for the rate (to the clock's).
pub(crate) fn register_converters(converters: &mut ConverterRegistry) {
    // It reads NV12 too (a decoder's native format) but writes only these four.
    let mut reads = CONVERT_FORMATS.to_vec();
    reads.push(PixelFormat::Nv12);
    converters.register(
        Conversion::Format,
        "convert",
        Caps::Video(VideoCaps::any().with_formats(&reads)),
        Caps::Video(VideoCaps::any().with_formats(&CONVERT_FORMATS)),
        Arc::new(|target: &Caps| {
            let format = target
                .as_video()
                .and_then(|v| v.formats.preferred())
                .ok_or_else(|| {
                    HandlerError::msg(format!("convert: the target {target} fixes no format"))
                })?;
            let convert = Convert::new(format)?;
            let (input, output) = (convert.input().erased(), convert.output().erased());
            Ok(TransferHandler::new(convert, input, output))
        }),
    );
    // Convert takes RGB to anything but YUV only to RGB: the planner is told, so it never
    // plans UYVY -> I420 (which needs RGB between, written out by the user).
    converters.limit(
        Conversion::Format,
        Arc::new(|input: &Caps, output: &Caps| {
            // Formats only: convert works at any size.
            let format = |c: &Caps| c.as_video().and_then(|v| v.formats.preferred());
            match (format(input), format(output)) {
                (Some(from), Some(to)) => Convert::sources(to).contains(&from),
                _ => false,
            }
        }),
    );
    let scale_caps = Caps::Video(VideoCaps::any().with_formats(&SCALE_FORMATS));
    converters.register(
        Conversion::Size,
        "scale",
        scale_caps.clone(),
        scale_caps,
        Arc::new(|target: &Caps| {
            let size = target
                .as_video()
                .and_then(|v| Some((v.width.fixed()?, v.height.fixed()?)));
            let (width, height) = size.ok_or_else(|| {
                HandlerError::msg(format!("scale: the target {target} fixes no size"))
            })?;
            let scale = Scale::new(ScaleConfig::new(width, height))?;
            let (input, output) = (scale.input().erased(), scale.output().erased());
            Ok(TransferHandler::new(scale, input, output))
        }),
    );
    converters.register(
        Conversion::Rate,
        "videorate",
        Caps::video(),
        Caps::video(),
        Arc::new(|_: &Caps| {
            let rate = VideoRate::new();
            let (input, output) = (rate.input().erased(), rate.output().erased());
            Ok(TransferHandler::new(rate, input, output))
        }),
    );
}

fn scale() -> HandlerSpec {
    HandlerSpec {
        name: "scale",
        summary: "Resizes frames (bilinear, area, nearest, lanczos); RGBA8, BGRA8, Gray8, I420, NV12, UYVY, each plane at its own resolution",
        ports: vec![
            port(
                "video",
                Direction::Input,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Latest,
                "frames of any size: rgba8, bgra8, gray8, i420, nv12 or uyvy",
            ),
            port(
                "video",
                Direction::Output,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Latest,
                "the same frames at `size` (frames already at it pass through by reference)",
            ),
        ],
        properties: vec![
            prop("size", SIZE, None, false, "output size"),
            prop(
                "method",
                PropType::Enum(&["bilinear", "area", "nearest", "lanczos"]),
                Some("bilinear"),
                false,
                "filter: bilinear (2 taps), area (box average, best for downscaling), nearest, lanczos (3 lobes)",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let (width, height) = p.size("size");
            let method = ScaleMethod::from_name(p.text("method")).unwrap_or_default();
            Ok(BuiltHandler::fixed(Scale::new(ScaleConfig {
                width,
                height,
                method,
            })?))
        }),
    }
}

fn video_rate() -> HandlerSpec {
    HandlerSpec {
        name: "videorate",
        summary: "One frame per clock tick: repeats the last frame or drops extra ones, restamped",
        ports: vec![
            VIDEO_IN,
            port(
                "video",
                Direction::Output,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Latest,
                "the input's frames at the clock's rate (repeats share pixels)",
            ),
        ],
        properties: vec![],
        factory: Arc::new(|_: &Properties| Ok(BuiltHandler::fixed(VideoRate::new()))),
    }
}

fn identity() -> HandlerSpec {
    /// `-1` (never) or a frame count.
    const AFTER: PropType = PropType::Int {
        min: -1,
        max: i64::MAX,
    };
    let after = |p: &Properties, name: &str| u64::try_from(p.int(name)).ok();
    HandlerSpec {
        name: "identity",
        summary: "Passes frames on unchanged; misbehaves on request (error-, panic-, abort-, \
                  segfault-after=N, sleep-us, drop-probability), to prove supervision and exit \
                  codes",
        ports: vec![
            port(
                "video",
                Direction::Input,
                PortKind::Video,
                MemoryCaps::CPU_GPU,
                DeliveryMode::Latest,
                "frames in any memory",
            ),
            port(
                "video",
                Direction::Output,
                PortKind::Video,
                MemoryCaps::CPU_GPU,
                DeliveryMode::Latest,
                "the same frames",
            ),
        ],
        properties: vec![
            prop(
                "error-after",
                AFTER,
                Some("-1"),
                false,
                "fail every call once this many frames came in since the (re)start (-1: never)",
            ),
            prop(
                "panic-after",
                AFTER,
                Some("-1"),
                false,
                "panic once this many frames came in since the (re)start (-1: never)",
            ),
            prop(
                "abort-after",
                AFTER,
                Some("-1"),
                false,
                "abort the process (SIGABRT) once this many frames came in since the (re)start; \
                 in process this ends the whole pipeline, use @process to contain it (-1: never)",
            )
            .access(Access::Crash),
            prop(
                "segfault-after",
                AFTER,
                Some("-1"),
                false,
                "fault deliberately (a real SIGSEGV) once this many frames came in since the \
                 (re)start; in process this ends the whole pipeline, use @process to contain it \
                 (-1: never)",
            )
            .access(Access::Crash),
            prop(
                "sleep-us",
                PropType::Int {
                    min: 0,
                    max: 10_000_000,
                },
                Some("0"),
                false,
                "sleep this many microseconds per frame, blocking its thread (to overrun \
                 deadlines and watchdogs)",
            ),
            prop(
                "drop-probability",
                PropType::Float { min: 0.0, max: 1.0 },
                Some("0"),
                false,
                "drop this share of the frames, chosen reproducibly from `seed`",
            ),
            prop(
                "seed",
                PropType::Int {
                    min: 0,
                    max: i64::MAX,
                },
                Some("0"),
                false,
                "where the drop-probability draws start (the same seed drops the same frames)",
            ),
        ],
        factory: Arc::new(move |p: &Properties| {
            let seed = u64::try_from(p.int("seed")).unwrap_or_default();
            let sleep_us = u64::try_from(p.int("sleep-us")).unwrap_or_default();
            Ok(BuiltHandler::fixed(
                streamlib_handlers_video::Identity::new(after(p, "error-after"))
                    .panic_after(after(p, "panic-after"))
                    .abort_after(after(p, "abort-after"))
                    .segfault_after(after(p, "segfault-after"))
                    .sleep(std::time::Duration::from_micros(sleep_us))
                    .drop_probability(p.float("drop-probability"), seed),
            ))
        }),
    }
}

fn null() -> HandlerSpec {
    HandlerSpec {
        name: "null",
        summary: "Discards video, audio or data and counts it (for throughput, or to end any \
                  branch: `… ! null`)",
        ports: vec![
            port(
                "video",
                Direction::Input,
                PortKind::Video,
                MemoryCaps::CPU_GPU,
                DeliveryMode::Latest,
                "frames in any memory, dropped, optional",
            )
            .optional(),
            port(
                "audio",
                Direction::Input,
                PortKind::Audio,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "audio of any rate and channel count, dropped, optional",
            )
            .optional(),
            port(
                "data",
                Direction::Input,
                PortKind::Data,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "data messages, dropped, optional",
            )
            .optional(),
        ],
        properties: vec![],
        factory: Arc::new(|_: &Properties| Ok(BuiltHandler::fixed(NullSink::new()))),
    }
}

#[cfg(feature = "display")]
fn display() -> HandlerSpec {
    use streamlib_handlers_video::{Display, DisplayConfig};
    HandlerSpec {
        name: "display",
        summary: "Shows frames in a window (X11); Esc or closing it stops the pipeline",
        ports: vec![
            VIDEO_IN,
            port(
                "keys",
                Direction::Output,
                PortKind::Event,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "key presses and releases in the window",
            ),
            port(
                "mouse",
                Direction::Output,
                PortKind::Event,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "pointer moves and clicks in the window",
            ),
        ],
        properties: vec![prop(
            "title",
            PropType::Text,
            Some("streamlib"),
            false,
            "window title",
        )],
        factory: Arc::new(|p: &Properties| {
            Ok(BuiltHandler::fixed(Display::new(DisplayConfig::new(
                p.text("title"),
            ))))
        }),
    }
}
