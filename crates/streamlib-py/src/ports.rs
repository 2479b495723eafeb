//! Ports declared from Python: `VideoInput("video", capabilities=["cpu"])` and its kin. Each
//! wraps a real port of the runtime; the handler that owns it (see `handler.rs`) hands it to
//! the runtime, which wires and negotiates it like any Rust handler's.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::PyClass;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::True;
use pyo3::types::PyDict;
use streamlib::buffers::{BufferPool, PoolBufMut, PooledBuf};
use streamlib::clock::{ClockSourceId, Rational, TimedTick};
use streamlib::ports::{
    AudioBuffer, Caps, DataMessage, FrameLayout, FramePool, InputPort, MemoryCaps, MemorySpace,
    Message, OutputPort, PixelFormat, Ports, VideoCaps, VideoFrame,
};

use crate::frame::{BYTES_COPIED, PyAudioBuffer, PyDataMessage, PyVideoFrame, type_name};

/// The memory capabilities named in Python (`["cpu"]`, `["gpu"]`, `["cpu", "gpu"]`).
fn memory_caps(port: &str, names: &[String]) -> PyResult<MemoryCaps> {
    let mut spaces = Vec::with_capacity(names.len());
    for name in names {
        spaces.push(match name.as_str() {
            "cpu" => MemorySpace::Cpu,
            "gpu" => MemorySpace::Gpu,
            other => {
                return Err(PyValueError::new_err(format!(
                    "port '{port}': unknown capability {other:?}; capabilities are \"cpu\" and \"gpu\""
                )));
            }
        });
    }
    MemoryCaps::new(&spaces).ok_or_else(|| {
        PyValueError::new_err(format!(
            "port '{port}': capabilities must name at least one of \"cpu\", \"gpu\""
        ))
    })
}

/// The memory capabilities a port asks for: host memory unless `capabilities` names others.
fn requested_caps(port: &str, capabilities: Option<Vec<String>>) -> PyResult<MemoryCaps> {
    memory_caps(port, &capabilities.unwrap_or_else(|| vec!["cpu".into()]))
}

/// An input named `name` accepting `caps`; `optional` lets it stay unconnected.
fn input_port<T: Message>(name: &str, caps: MemoryCaps, optional: bool) -> InputPort<T> {
    let port = InputPort::new(name.to_owned(), caps);
    if optional { port.optional() } else { port }
}

/// Audio and data live in host memory: `capabilities`, if given, must be `["cpu"]`.
fn cpu_only(kind: &str, port: &str, capabilities: Option<Vec<String>>) -> PyResult<()> {
    match capabilities {
        None => Ok(()),
        Some(names) if memory_caps(port, &names)? == MemoryCaps::CPU => Ok(()),
        Some(names) => Err(PyValueError::new_err(format!(
            "{kind} '{port}': audio and data are in host memory; capabilities must be [\"cpu\"], not {names:?}"
        ))),
    }
}

/// A pixel format by its name (`rgba8`; `rgba` is accepted too).
pub(crate) fn pixel_format(name: &str) -> PyResult<PixelFormat> {
    let wanted = match name {
        "rgba" => "rgba8",
        "bgra" => "bgra8",
        "gray" => "gray8",
        other => other,
    };
    PixelFormat::ALL
        .into_iter()
        .find(|f| f.as_str() == wanted)
        .ok_or_else(|| {
            let names: Vec<&str> = PixelFormat::ALL.iter().map(|f| f.as_str()).collect();
            PyValueError::new_err(format!(
                "unknown pixel format {name:?}; formats: {}",
                names.join(", ")
            ))
        })
}

/// A numpy shape as Python prints it: `(8, 8, 3)`, `(4,)`.
fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A numpy array's dtype as numpy prints it (`float32`), or its `typestr` if it has none.
fn dtype_text(array: &Bound<'_, PyAny>, typestr: &str) -> String {
    array
        .getattr("dtype")
        .map_or_else(|_| typestr.to_owned(), |d| d.to_string())
}

/// The handler a port belongs to, once bound (for error messages, and so that a port serves
/// one handler only).
#[derive(Default)]
pub(crate) struct Owner(OnceLock<String>);

impl Owner {
    pub(crate) fn bind(&self, kind: &str, port: &str, handler: &str) -> PyResult<()> {
        if self.0.set(handler.to_owned()).is_err() {
            let owner = self.0.get().map_or("?", String::as_str);
            return Err(PyValueError::new_err(format!(
                "{kind} '{port}' already belongs to handler '{owner}' (a port, like the Python \
                 handler that declares it, serves one runtime; make a new handler for another)"
            )));
        }
        Ok(())
    }

    fn describe(&self, kind: &str, port: &str) -> String {
        match self.0.get() {
            Some(owner) => format!("{kind} '{port}' of handler '{owner}'"),
            None => format!("{kind} '{port}'"),
        }
    }
}

/// The tick the owning handler is processing, for stamping new frames.
#[derive(Default)]
pub(crate) struct CurrentTick {
    timestamp: AtomicU64,
    frame_number: AtomicU64,
    clock: AtomicU64,
    fps_num: AtomicU32,
    fps_den: AtomicU32,
}

impl CurrentTick {
    pub(crate) fn set(&self, tick: &TimedTick) {
        self.timestamp.store(tick.timestamp, Ordering::Relaxed);
        self.frame_number
            .store(tick.frame_number, Ordering::Relaxed);
        self.clock.store(tick.clock_source_id.0, Ordering::Relaxed);
        self.fps_num.store(tick.fps.num, Ordering::Relaxed);
        self.fps_den.store(tick.fps.den, Ordering::Relaxed);
    }

    fn get(&self) -> TimedTick {
        TimedTick {
            timestamp: self.timestamp.load(Ordering::Relaxed),
            frame_number: self.frame_number.load(Ordering::Relaxed),
            clock_source_id: ClockSourceId(self.clock.load(Ordering::Relaxed)),
            fps: Rational::new(
                self.fps_num.load(Ordering::Relaxed).max(1),
                self.fps_den.load(Ordering::Relaxed).max(1),
            )
            .unwrap_or(Rational::fps(30)),
        }
    }
}

/// What [`bind`] needs of a port class; [`port_class!`] implements it.
trait PortClass: PyClass<Frozen = True> + Sync {
    /// The class's Python name, for messages.
    const CLASS: &'static str;
    /// The handler dict it belongs in, singular: `input` or `output`.
    const DIRECTION: &'static str;

    fn port_name(&self) -> &str;

    fn owner(&self) -> &Owner;

    /// Adds the port to its handler's `ports`.
    fn add_to(&self, ports: Ports) -> Ports;

    /// The tick an output stamps its writes with; `None` for an input.
    fn tick(&self) -> Option<&Arc<CurrentTick>>;

    /// `VideoOutput 'video' of handler 'source'`, for messages.
    fn describe(&self) -> String {
        self.owner().describe(Self::CLASS, self.port_name())
    }
}

/// Declares the `#[pymethods]` of a port class: its own `methods`, and what every port has in
/// Python (`name`, `kind`, `direction`, `repr`), and implements [`PortClass`]. PyO3 takes one
/// `#[pymethods]` block per class, hence a macro. The class has the fields `name`, `owner` and
/// `port`, and an output also `tick`.
macro_rules! port_class {
    ($class:ident, $kind:literal, $direction:ident, { $($methods:tt)* }) => {
        #[pymethods]
        impl $class {
            $($methods)*

            /// The port's name.
            #[getter]
            fn name(&self) -> &str {
                &self.name
            }

            #[doc = concat!("`", $kind, "`.")]
            #[getter]
            fn kind(&self) -> &'static str {
                $kind
            }

            #[doc = concat!("`", stringify!($direction), "`.")]
            #[getter]
            fn direction(&self) -> &'static str {
                stringify!($direction)
            }

            fn __repr__(&self) -> String {
                format!(concat!(stringify!($class), "({:?})"), self.name)
            }
        }

        impl PortClass for $class {
            const CLASS: &'static str = stringify!($class);
            const DIRECTION: &'static str = stringify!($direction);

            fn port_name(&self) -> &str {
                &self.name
            }

            fn owner(&self) -> &Owner {
                &self.owner
            }

            fn add_to(&self, ports: Ports) -> Ports {
                ports.$direction(&self.port)
            }

            fn tick(&self) -> Option<&Arc<CurrentTick>> {
                port_class!(@tick $direction, self)
            }
        }
    };
    (@tick input, $this:ident) => {
        None
    };
    (@tick output, $this:ident) => {
        Some(&$this.tick)
    };
}

/// A video input.
#[pyclass(module = "streamlib._native", frozen)]
pub struct VideoInput {
    name: String,
    caps: MemoryCaps,
    port: InputPort<VideoFrame>,
    owner: Owner,
}

port_class!(VideoInput, "video", input, {
    /// A video input accepting `capabilities` memory and `formats` pixel formats (the
    /// runtime inserts converters for others); `optional` lets it stay unconnected.
    #[new]
    #[pyo3(signature = (name, capabilities=None, formats=None, optional=false))]
    fn new(
        name: String,
        capabilities: Option<Vec<String>>,
        formats: Option<Vec<String>>,
        optional: bool,
    ) -> PyResult<Self> {
        let caps = requested_caps(&name, capabilities)?;
        let formats = formats
            .unwrap_or_else(|| vec!["rgba8".into()])
            .iter()
            .map(|f| pixel_format(f))
            .collect::<PyResult<Vec<_>>>()?;
        let port = input_port(&name, caps, optional)
            .with_format(Caps::Video(VideoCaps::any().with_formats(&formats)));
        Ok(Self {
            name,
            caps,
            port,
            owner: Owner::default(),
        })
    }

    /// The memory it accepts.
    #[getter]
    fn capabilities(&self) -> Vec<&'static str> {
        self.caps.iter().map(MemorySpace::as_str).collect()
    }

    /// The newest frame (even one already read), or `None` before the first.
    fn read_latest(&self) -> Option<PyVideoFrame> {
        self.port.latest().map(PyVideoFrame::shared)
    }

    /// The newest frame not read yet, or `None`.
    fn recv(&self) -> Option<PyVideoFrame> {
        self.port.recv().map(PyVideoFrame::shared)
    }

    /// Whether `recv()` would return a frame.
    #[getter]
    fn has_new(&self) -> bool {
        self.port.has_new()
    }

    /// What the runtime negotiated on this input (`format`, `width`, `height`, `fps`), or
    /// `None` before the pipeline started.
    fn negotiated<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(info) = self.port.negotiated_video() else {
            return Ok(None);
        };
        let dict = PyDict::new(py);
        dict.set_item("format", info.format.as_str())?;
        dict.set_item("width", info.width)?;
        dict.set_item("height", info.height)?;
        dict.set_item("fps", info.rate.map(Rational::as_f64))?;
        Ok(Some(dict))
    }
});

/// A video output.
#[pyclass(module = "streamlib._native", frozen)]
pub struct VideoOutput {
    name: String,
    caps: MemoryCaps,
    format: PixelFormat,
    port: OutputPort<VideoFrame>,
    owner: Owner,
    tick: Arc<CurrentTick>,
    pool: Mutex<Option<FramePool>>,
    /// The frame size declared (`width=`, `height=`), which arrays written must have.
    size: Option<(u32, u32)>,
}

impl VideoOutput {
    /// A pooled buffer for a `width`×`height` frame, or `None` when the pool is empty (the
    /// readers hold every frame; the skip is counted on the output).
    fn acquire(&self, layout: FrameLayout) -> PyResult<Option<PoolBufMut<u8>>> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.as_ref().is_none_or(|p| p.layout() != layout) {
            let name = format!(
                "{}.{}",
                self.owner.0.get().map_or("python", String::as_str),
                self.name
            );
            *pool = Some(
                FramePool::for_output(name, layout, 2, 2, &self.port)
                    .map_err(|e| PyValueError::new_err(format!("{}: {e}", self.describe())))?,
            );
        }
        Ok(pool.as_ref().and_then(|p| p.acquire_for(&self.port)))
    }

    /// Copies a uint8 numpy array of this output's shape into a pooled frame.
    fn frame_from_array(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
    ) -> PyResult<Option<VideoFrame>> {
        let describe = || self.describe();
        if array.getattr("__array_interface__").is_err() {
            return Err(PyTypeError::new_err(format!(
                "{}: write() takes a VideoFrame or a numpy uint8 array, not {}",
                describe(),
                type_name(array)
            )));
        }
        let (channels, format_name) = match self.format {
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => (Some(4), self.format.as_str()),
            PixelFormat::Gray8 => (None, "gray8"),
            other => {
                return Err(PyValueError::new_err(format!(
                    "{}: write() of a numpy array needs an rgba8, bgra8 or gray8 output, this one is {other}; write a VideoFrame from new_frame()",
                    describe()
                )));
            }
        };
        // Everything below is read from the plain C-contiguous array numpy makes of `array`
        // (the same array when it is one), never from what `array` says of itself: an object
        // may describe a shape its bytes do not have.
        let contiguous = plain_c_array(py, array)?;
        let plain = contiguous.interface;
        let shape = &plain.shape;
        let expected = match channels {
            Some(c) => format!("(height, width, {c})"),
            None => "(height, width)".to_owned(),
        };
        let shape_ok = match channels {
            Some(c) => shape.len() == 3 && shape[2] == c,
            None => shape.len() == 2,
        };
        if plain.typestr != "|u1" || !shape_ok || shape[0] == 0 || shape[1] == 0 {
            return Err(PyValueError::new_err(format!(
                "{}: a {format_name} frame must be a uint8 array of shape {expected}, got dtype {} and shape {}",
                describe(),
                dtype_text(&contiguous.array, &plain.typestr),
                shape_text(shape)
            )));
        }
        let (height, width) = (shape[0], shape[1]);
        if let Some((w, h)) = self.size
            && (w as usize, h as usize) != (width, height)
        {
            return Err(PyValueError::new_err(format!(
                "{}: the output was declared {w}x{h}, the array is {width}x{height} (shape {})",
                describe(),
                shape_text(shape)
            )));
        }
        let layout = FrameLayout::new(
            u32::try_from(width).unwrap_or(u32::MAX),
            u32::try_from(height).unwrap_or(u32::MAX),
            self.format,
        )
        .map_err(|e| PyValueError::new_err(format!("{}: {e}", describe())))?;
        let len = layout.buffer_len();
        if plain.len_bytes() != len {
            return Err(PyValueError::new_err(format!(
                "{}: a {width}x{height} {format_name} frame is {len} bytes, the array {}",
                describe(),
                plain.len_bytes()
            )));
        }
        let Some(mut buf) = self.acquire(layout)? else {
            return Ok(None);
        };
        // SAFETY: `contiguous.array` is a live (held until the end of this function), plain
        // C-contiguous uint8 ndarray of `len` bytes at `address` (its own interface, checked
        // above); bytes have no alignment to respect.
        let src = unsafe { std::slice::from_raw_parts(plain.address as *const u8, len) };
        buf[..len].copy_from_slice(src);
        BYTES_COPIED.fetch_add(len as u64, Ordering::Relaxed);
        let frame = VideoFrame::cpu(layout, buf.freeze())
            .map_err(|e| PyValueError::new_err(format!("{}: {e}", describe())))?;
        Ok(Some(frame.with_tick(&self.tick.get())))
    }
}

/// What the array interface of a plain C-contiguous ndarray says.
struct PlainInterface {
    typestr: String,
    shape: Vec<usize>,
    itemsize: usize,
    address: usize,
}

impl PlainInterface {
    fn len_bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.itemsize
    }
}

/// A plain C-contiguous ndarray made from `value` by numpy, and its interface.
struct PlainArray<'py> {
    array: Bound<'py, PyAny>,
    interface: PlainInterface,
}

/// `np.ascontiguousarray(value)`, checked to be an exact `ndarray` (not a subclass that could
/// describe itself otherwise), with no strides (C order) and no offset.
fn plain_c_array<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<PlainArray<'py>> {
    let array = crate::frame::numpy_ascontiguousarray(py)?.call1((value,))?;
    let ndarray = crate::frame::numpy_ndarray(py)?;
    if !array.get_type().is(ndarray) {
        return Err(PyTypeError::new_err(format!(
            "numpy made a {} of a {}, not an ndarray",
            type_name(&array),
            type_name(value)
        )));
    }
    let interface = array.getattr("__array_interface__")?;
    let strides = interface.get_item("strides")?;
    if !strides.is_none() {
        return Err(PyValueError::new_err(
            "numpy made an array that is not C-contiguous",
        ));
    }
    let (address, _readonly): (usize, bool) = interface.get_item("data")?.extract()?;
    let itemsize: usize = array.getattr("itemsize")?.extract()?;
    Ok(PlainArray {
        interface: PlainInterface {
            typestr: interface.get_item("typestr")?.extract()?,
            shape: interface.get_item("shape")?.extract()?,
            itemsize,
            address,
        },
        array,
    })
}

port_class!(VideoOutput, "video", output, {
    /// A video output offering `capabilities` memory, producing `format` frames (of a fixed
    /// `width`×`height` when given, so readers learn the size at negotiation).
    #[new]
    #[pyo3(signature = (name, capabilities=None, format="rgba8", width=None, height=None))]
    fn new(
        name: String,
        capabilities: Option<Vec<String>>,
        format: &str,
        width: Option<u32>,
        height: Option<u32>,
    ) -> PyResult<Self> {
        let caps = requested_caps(&name, capabilities)?;
        let format = pixel_format(format)?;
        let mut video = VideoCaps::any().with_formats(&[format]);
        if let (Some(w), Some(h)) = (width, height) {
            video = video.with_size(w, h);
        }
        Ok(Self {
            port: OutputPort::new(name.clone(), caps).with_format(Caps::Video(video)),
            name,
            caps,
            format,
            owner: Owner::default(),
            tick: Arc::default(),
            pool: Mutex::new(None),
            size: width.zip(height),
        })
    }

    /// The memory it offers.
    #[getter]
    fn capabilities(&self) -> Vec<&'static str> {
        self.caps.iter().map(MemorySpace::as_str).collect()
    }

    /// A writable frame from this output's pool (its `data` is writable in place), or `None`
    /// when the pool is empty because the readers still hold every frame: skip this tick
    /// (the skip is counted in the stats).
    #[pyo3(signature = (width, height, format=None))]
    fn new_frame(
        &self,
        width: u32,
        height: u32,
        format: Option<&str>,
    ) -> PyResult<Option<PyVideoFrame>> {
        let format = match format {
            Some(f) => pixel_format(f)?,
            None => self.format,
        };
        let layout = FrameLayout::new(width, height, format)
            .map_err(|e| PyValueError::new_err(format!("{}: {e}", self.describe())))?;
        Ok(self
            .acquire(layout)?
            .map(|buf| PyVideoFrame::new_writable(buf, layout)))
    }

    /// Publishes a frame: a `VideoFrame` (received, or from `new_frame`: no copy), or a
    /// numpy uint8 array of shape (height, width, 4) (copied into a pooled frame). Returns
    /// whether it was written (False: the pool was empty, the frame skipped and counted).
    fn write(&self, py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Ok(cell) = frame.cast::<PyVideoFrame>() {
            let mut video = cell.try_borrow_mut().map_err(|_| {
                PyValueError::new_err(format!("{}: the frame is in use", self.describe()))
            })?;
            let frame = video.take_for_write(py, Some(&self.tick.get()), |layout| {
                self.acquire(layout).ok().flatten()
            })?;
            self.port.write(frame);
            return Ok(true);
        }
        match self.frame_from_array(py, frame)? {
            Some(frame) => {
                self.port.write(frame);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Frames written so far.
    #[getter]
    fn written(&self) -> u64 {
        self.port.written()
    }
});

/// An audio input (ordered: every buffer, in order).
#[pyclass(module = "streamlib._native", frozen)]
pub struct AudioInput {
    name: String,
    port: InputPort<AudioBuffer>,
    owner: Owner,
}

port_class!(AudioInput, "audio", input, {
    /// An audio input; `optional` lets it stay unconnected.
    #[new]
    #[pyo3(signature = (name, capabilities=None, optional=false))]
    fn new(name: String, capabilities: Option<Vec<String>>, optional: bool) -> PyResult<Self> {
        let caps = requested_caps(&name, capabilities)?;
        Ok(Self {
            port: input_port(&name, caps, optional),
            name,
            owner: Owner::default(),
        })
    }

    /// The oldest buffer not read yet, or `None`.
    fn recv(&self) -> Option<PyAudioBuffer> {
        self.port.recv().map(|buffer| PyAudioBuffer { buffer })
    }

    /// Same as `recv()` (the plan's name).
    fn read(&self) -> Option<PyAudioBuffer> {
        self.recv()
    }
});

/// An audio output.
#[pyclass(module = "streamlib._native", frozen)]
pub struct AudioOutput {
    name: String,
    sample_rate: u32,
    port: OutputPort<AudioBuffer>,
    owner: Owner,
    tick: Arc<CurrentTick>,
    /// Where written samples are copied to, reused once the readers release them.
    pool: Mutex<Option<BufferPool<f32>>>,
}

port_class!(AudioOutput, "audio", output, {
    /// An audio output of `sample_rate` Hz (host memory: `capabilities` may name only "cpu").
    #[new]
    #[pyo3(signature = (name, sample_rate=48000, capabilities=None))]
    fn new(name: String, sample_rate: u32, capabilities: Option<Vec<String>>) -> PyResult<Self> {
        cpu_only("AudioOutput", &name, capabilities)?;
        if sample_rate == 0 {
            return Err(PyValueError::new_err(format!(
                "AudioOutput '{name}': sample_rate must be positive"
            )));
        }
        Ok(Self {
            port: OutputPort::new(name.clone(), MemoryCaps::CPU),
            name,
            sample_rate,
            owner: Owner::default(),
            tick: Arc::default(),
            pool: Mutex::new(None),
        })
    }

    /// Publishes audio: an `AudioBuffer` (no copy) or a float32 numpy array of shape
    /// (frames, channels) (copied).
    fn write(&self, py: Python<'_>, samples: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(buffer) = samples.cast::<PyAudioBuffer>() {
            self.port.write(buffer.get().buffer.clone());
            return Ok(());
        }
        let contiguous = plain_c_array(py, samples).map_err(|_| {
            PyTypeError::new_err(format!(
                "{}: write() takes an AudioBuffer or a numpy float32 array, not {}",
                self.describe(),
                type_name(samples)
            ))
        })?;
        let plain = &contiguous.interface;
        let shape = &plain.shape;
        if plain.typestr != "<f4"
            || shape.len() != 2
            || shape[1] == 0
            || shape[1] > usize::from(u16::MAX)
        {
            return Err(PyValueError::new_err(format!(
                "{}: audio must be a float32 array of shape (frames, channels), got {} {shape:?}",
                self.describe(),
                dtype_text(&contiguous.array, &plain.typestr)
            )));
        }
        let len = shape[0] * shape[1];
        // `contiguous.array` is a live (held until the end of this function), plain
        // C-contiguous float32 ndarray of `len` elements at `address`.
        let samples = match self.pooled(len)? {
            Some(mut buf) => {
                // SAFETY: `len` f32s at `plain.address` (above), `buf` is another buffer.
                unsafe { copy_unaligned(plain.address, &mut buf[..len]) };
                buf.freeze()
            }
            None => {
                let mut samples = vec![0.0; len];
                // SAFETY: `len` f32s at `plain.address` (above), `samples` is a new Vec.
                unsafe { copy_unaligned(plain.address, &mut samples) };
                PooledBuf::from_vec(samples)
            }
        };
        let tick = self.tick.get();
        let buffer = AudioBuffer::new(
            samples,
            u16::try_from(shape[1]).unwrap_or(u16::MAX),
            self.sample_rate,
            tick.timestamp,
        )
        .map_err(|e| PyValueError::new_err(format!("{}: {e}", self.describe())))?;
        BYTES_COPIED.fetch_add((len * 4) as u64, Ordering::Relaxed);
        self.port.write(buffer);
        Ok(())
    }
});

impl AudioOutput {
    /// A buffer of `len` samples from this output's pool (made again when the length
    /// changes), or `None` when the readers hold all of the pool's (or `len` is 0).
    fn pooled(&self, len: usize) -> PyResult<Option<PoolBufMut<f32>>> {
        if len == 0 {
            return Ok(None);
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.as_ref().is_none_or(|p| p.buffer_len() != len) {
            let name = format!(
                "{}.{}",
                self.owner.0.get().map_or("python", String::as_str),
                self.name
            );
            *pool = Some(
                BufferPool::new(name, len, 2, AUDIO_POOL_MAX)
                    .map_err(|e| PyValueError::new_err(format!("{}: {e}", self.describe())))?,
            );
        }
        Ok(pool.as_ref().and_then(|p| p.acquire().ok()))
    }
}

/// Buffers an audio output's pool may grow to: ordered delivery queues buffers, so readers
/// may hold several at once.
const AUDIO_POOL_MAX: usize = 16;

/// Copies `dst.len()` samples from `src` as bytes: numpy does not promise a float32 array is
/// aligned (one over a byte buffer at an odd offset is not), so `src` is never read as `f32`.
///
/// # Safety
/// `src` must be the address of `dst.len()` readable, initialised f32s, not overlapping `dst`.
unsafe fn copy_unaligned(src: usize, dst: &mut [f32]) {
    // SAFETY: the caller promises `src` holds `dst.len()` f32s; `dst` is a valid `&mut`;
    // byte copies have no alignment requirement.
    unsafe {
        std::ptr::copy_nonoverlapping(
            src as *const u8,
            dst.as_mut_ptr().cast::<u8>(),
            size_of_val(dst),
        );
    }
}

/// A data input (ordered).
#[pyclass(module = "streamlib._native", frozen)]
pub struct DataInput {
    name: String,
    port: InputPort<DataMessage>,
    owner: Owner,
}

port_class!(DataInput, "data", input, {
    /// A data input; `optional` lets it stay unconnected (`capabilities`: only "cpu").
    #[new]
    #[pyo3(signature = (name, optional=false, capabilities=None))]
    fn new(name: String, optional: bool, capabilities: Option<Vec<String>>) -> PyResult<Self> {
        cpu_only("DataInput", &name, capabilities)?;
        Ok(Self {
            port: input_port(&name, MemoryCaps::CPU, optional),
            name,
            owner: Owner::default(),
        })
    }

    /// The oldest message not read yet, or `None`.
    fn recv(&self) -> Option<PyDataMessage> {
        self.port.recv().map(|message| PyDataMessage { message })
    }
});

/// A data output.
#[pyclass(module = "streamlib._native", frozen)]
pub struct DataOutput {
    name: String,
    port: OutputPort<DataMessage>,
    owner: Owner,
    tick: Arc<CurrentTick>,
}

port_class!(DataOutput, "data", output, {
    /// A data output (`capabilities`: only "cpu").
    #[new]
    #[pyo3(signature = (name, capabilities=None))]
    fn new(name: String, capabilities: Option<Vec<String>>) -> PyResult<Self> {
        cpu_only("DataOutput", &name, capabilities)?;
        Ok(Self {
            port: OutputPort::new(name.clone(), MemoryCaps::CPU),
            name,
            owner: Owner::default(),
            tick: Arc::default(),
        })
    }

    /// Publishes a `DataMessage`, or text / bytes under `topic`.
    #[pyo3(signature = (message, topic="data"))]
    fn write(&self, message: &Bound<'_, PyAny>, topic: &str) -> PyResult<()> {
        let timestamp = self.tick.get().timestamp;
        let message = if let Ok(m) = message.cast::<PyDataMessage>() {
            m.get().message.clone()
        } else if let Ok(text) = message.extract::<String>() {
            DataMessage::text(topic, &text, timestamp)
        } else if let Ok(bytes) = message.extract::<Vec<u8>>() {
            DataMessage::new(topic, bytes, timestamp)
        } else {
            return Err(PyTypeError::new_err(format!(
                "{}: write() takes a DataMessage, str or bytes, not {}",
                self.describe(),
                type_name(message)
            )));
        };
        self.port.write(message);
        Ok(())
    }
});

/// The ports of one Python handler, bound to it: what the runtime wires, and the ticks of its
/// outputs, set before each `process` call.
#[derive(Default)]
pub(crate) struct BoundPorts {
    pub(crate) ports: Ports,
    pub(crate) ticks: Vec<Arc<CurrentTick>>,
}

/// Where a port was found: `handler.{direction}s[key]`.
struct Place<'a> {
    handler: &'a str,
    direction: &'a str,
    key: &'a str,
}

impl Place<'_> {
    /// Binds `value` to the handler if it is a `P`: `None` if it is not one.
    fn bind_as<P: PortClass>(
        &self,
        value: &Bound<'_, PyAny>,
        bound: &mut BoundPorts,
    ) -> Option<PyResult<()>> {
        let port = value.cast::<P>().ok()?.get();
        Some((|| {
            let Self {
                handler,
                direction,
                key,
            } = *self;
            if direction != P::DIRECTION {
                let actual = P::DIRECTION;
                return Err(PyTypeError::new_err(format!(
                    "handler '{handler}': self.{direction}s['{key}'] is a {}, an {actual} port; put it in self.{actual}s",
                    P::CLASS
                )));
            }
            let name = port.port_name();
            if name != key {
                return Err(PyValueError::new_err(format!(
                    "handler '{handler}': self.{direction}s['{key}'] is a port named {name:?}; the key must be the port's name"
                )));
            }
            port.owner().bind(P::CLASS, name, handler)?;
            bound.ports = port.add_to(std::mem::take(&mut bound.ports));
            bound.ticks.extend(port.tick().cloned());
            Ok(())
        })())
    }
}

/// Binds the port `value` found in `handler.{direction}s[key]` to `handler`, adding it to
/// `bound`.
pub(crate) fn bind(
    handler: &str,
    direction: &str,
    key: &str,
    value: &Bound<'_, PyAny>,
    bound: &mut BoundPorts,
) -> PyResult<()> {
    let place = Place {
        handler,
        direction,
        key,
    };
    place
        .bind_as::<VideoInput>(value, bound)
        .or_else(|| place.bind_as::<AudioInput>(value, bound))
        .or_else(|| place.bind_as::<DataInput>(value, bound))
        .or_else(|| place.bind_as::<VideoOutput>(value, bound))
        .or_else(|| place.bind_as::<AudioOutput>(value, bound))
        .or_else(|| place.bind_as::<DataOutput>(value, bound))
        .unwrap_or_else(|| {
            Err(PyTypeError::new_err(format!(
                "handler '{handler}': self.{direction}s['{key}'] is {}, not a port (VideoInput, VideoOutput, AudioInput, AudioOutput, DataInput, DataOutput)",
                type_name(value)
            )))
        })
}
