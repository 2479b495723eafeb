//! What Python handlers see: ticks, video frames whose pixels numpy views in place, audio
//! buffers and data messages.
//!
//! A frame's pixels reach numpy through numpy's own `__array_interface__` protocol: the array
//! is made over the pooled buffer's address and keeps the frame object alive as its `base`, so
//! no byte is copied and the buffer returns to its pool only when the last array viewing it is
//! gone. (The buffer protocol, `__getbuffer__`, is not in the stable ABI before CPython 3.11;
//! the array interface is, and numpy reads it the same way.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use streamlib::buffers::PoolBufMut;
use streamlib::clock::TimedTick;
use streamlib::ports::{AudioBuffer, DataMessage, FrameLayout, PixelFormat, VideoFrame};

/// Bytes the bindings copied between Python and Rust (only `write()` of a numpy array that is
/// not a frame copies): what the no-copy tests read.
pub(crate) static BYTES_COPIED: AtomicU64 = AtomicU64::new(0);

/// One clock tick, as `process(self, tick)` receives it.
#[pyclass(module = "streamlib._native", frozen)]
pub struct Tick {
    /// Presentation time in nanoseconds (the clock's timescale).
    #[pyo3(get)]
    timestamp: u64,
    /// The tick's number, from 0.
    #[pyo3(get)]
    frame_number: u64,
    /// The clock's rate in frames per second.
    #[pyo3(get)]
    fps: f64,
    end: std::sync::atomic::AtomicBool,
    stop: std::sync::atomic::AtomicBool,
}

impl Tick {
    pub(crate) fn new(tick: &TimedTick) -> Self {
        Self {
            timestamp: tick.timestamp,
            frame_number: tick.frame_number,
            fps: tick.fps.as_f64(),
            end: Default::default(),
            stop: Default::default(),
        }
    }

    /// Whether the handler called `end_of_stream()` on it.
    pub(crate) fn end_requested(&self) -> bool {
        self.end.load(Ordering::Relaxed)
    }

    /// Whether the handler called `request_stop()` on it.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

#[pymethods]
impl Tick {
    /// Ends this handler's stream after this call (a source that ran out): downstream drains.
    fn end_of_stream(&self) {
        self.end.store(true, Ordering::Relaxed);
    }

    /// Asks the runtime to stop the whole pipeline after this call.
    fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn __repr__(&self) -> String {
        format!(
            "Tick(frame_number={}, timestamp={}, fps={})",
            self.frame_number, self.timestamp, self.fps
        )
    }
}

/// Where a frame's pixels are.
pub(crate) enum Pixels {
    /// A frame received or already published: read-only.
    Shared(VideoFrame),
    /// A frame taken from an output's pool (`new_frame`), not yet written: writable.
    Writable {
        buf: PoolBufMut<u8>,
        layout: FrameLayout,
        /// The buffer's address, taken from the exclusive handle (numpy writes through it).
        address: usize,
    },
    /// A writable frame after `write()`: its pixels belong to the readers now.
    Written(VideoFrame),
    /// Only while `write()` moves the pixels from `Writable` to `Written`.
    Moving,
}

/// A video frame. `data` is a numpy array over the frame's pooled buffer (no copy):
/// `(height, width, 4)` for RGBA/BGRA, `(height, width)` for gray, the raw bytes otherwise.
#[pyclass(module = "streamlib._native", name = "VideoFrame")]
pub struct PyVideoFrame {
    pub(crate) pixels: Pixels,
    layout: FrameLayout,
    /// Weak references to the writable arrays handed out, made read-only on `write()`.
    views: Mutex<Vec<Py<PyAny>>>,
}

impl PyVideoFrame {
    pub(crate) fn shared(frame: VideoFrame) -> Self {
        Self {
            layout: frame.layout(),
            pixels: Pixels::Shared(frame),
            views: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn new_writable(mut buf: PoolBufMut<u8>, layout: FrameLayout) -> Self {
        let address = buf.as_mut_ptr() as usize;
        Self {
            layout,
            pixels: Pixels::Writable {
                buf,
                layout,
                address,
            },
            views: Mutex::new(Vec::new()),
        }
    }

    fn layout(&self) -> FrameLayout {
        self.layout
    }

    fn frame(&self) -> Option<&VideoFrame> {
        match &self.pixels {
            Pixels::Shared(f) | Pixels::Written(f) => Some(f),
            Pixels::Writable { .. } | Pixels::Moving => None,
        }
    }

    /// The address and length of the host bytes, if the frame is in host memory.
    fn bytes(&self) -> Option<(usize, usize)> {
        match &self.pixels {
            Pixels::Shared(f) | Pixels::Written(f) => {
                f.cpu_bytes().map(|b| (b.as_ptr() as usize, b.len()))
            }
            Pixels::Writable { buf, address, .. } => Some((*address, buf.len())),
            Pixels::Moving => None,
        }
    }

    /// Publishes the frame: a writable one is frozen (its arrays turn read-only); a shared one
    /// is cloned (two reference counts). `None` stamps nothing; a tick stamps a new frame.
    pub(crate) fn take_for_write(
        &mut self,
        py: Python<'_>,
        tick: Option<&TimedTick>,
    ) -> PyResult<VideoFrame> {
        if let Pixels::Shared(f) | Pixels::Written(f) = &self.pixels {
            return Ok(f.clone());
        }
        let Pixels::Writable { buf, layout, .. } =
            std::mem::replace(&mut self.pixels, Pixels::Moving)
        else {
            return Err(PyRuntimeError::new_err("this frame is being written"));
        };
        let frame = VideoFrame::cpu(layout, buf.freeze())
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let frame = match tick {
            Some(t) => frame.with_tick(t),
            None => frame,
        };
        self.pixels = Pixels::Written(frame.clone());
        self.freeze_views(py);
        Ok(frame)
    }

    fn freeze_views(&self, py: Python<'_>) {
        let views = std::mem::take(&mut *self.views.lock().unwrap_or_else(|e| e.into_inner()));
        for weak in views {
            // A dead weak reference returns None; a live array becomes read-only.
            if let Ok(array) = weak.bind(py).call0()
                && !array.is_none()
                && let Ok(flags) = array.getattr("flags")
            {
                let _ = flags.setattr("writeable", false);
            }
        }
    }
}

/// The numpy shape and strides of a frame's bytes.
fn shape_of(layout: FrameLayout, len: usize) -> (Vec<usize>, Vec<usize>) {
    let (w, h, s) = (
        layout.width() as usize,
        layout.height() as usize,
        layout.stride() as usize,
    );
    match layout.format() {
        PixelFormat::Rgba8 | PixelFormat::Bgra8 => (vec![h, w, 4], vec![s, 4, 1]),
        PixelFormat::Gray8 => (vec![h, w], vec![s, 1]),
        _ => (vec![len], vec![1]),
    }
}

pub(crate) fn numpy_asarray<'py>(py: Python<'py>) -> PyResult<&'py Bound<'py, PyAny>> {
    static ASARRAY: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    ASARRAY.import(py, "numpy", "asarray")
}

pub(crate) fn numpy_ascontiguousarray<'py>(py: Python<'py>) -> PyResult<&'py Bound<'py, PyAny>> {
    static ASCONTIGUOUS: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    ASCONTIGUOUS.import(py, "numpy", "ascontiguousarray")
}

#[pymethods]
impl PyVideoFrame {
    /// Width in pixels.
    #[getter]
    fn width(&self) -> u32 {
        self.layout().width()
    }

    /// Height in pixels.
    #[getter]
    fn height(&self) -> u32 {
        self.layout().height()
    }

    /// Pixel format: `rgba8`, `bgra8`, `gray8`, `nv12`, `i420`, `uyvy`.
    #[getter]
    fn format(&self) -> &'static str {
        self.layout().format().as_str()
    }

    /// Bytes per row.
    #[getter]
    fn stride(&self) -> u32 {
        self.layout().stride()
    }

    /// Presentation time in nanoseconds (0 until a new frame is written).
    #[getter]
    fn timestamp(&self) -> u64 {
        self.frame().map_or(0, VideoFrame::timestamp_ns)
    }

    /// The tick the frame was produced on.
    #[getter]
    fn frame_number(&self) -> u64 {
        self.frame().map_or(0, VideoFrame::frame_number)
    }

    /// `cpu` or `gpu`.
    #[getter]
    fn memory(&self) -> &'static str {
        match self.frame() {
            Some(f) => f.memory().as_str(),
            None => "cpu",
        }
    }

    /// Whether `data` may be written (a frame from `new_frame` not yet written).
    #[getter]
    fn writable(&self) -> bool {
        matches!(self.pixels, Pixels::Writable { .. })
    }

    /// The address of the pooled buffer (what `data.ctypes.data` equals: no copy).
    #[getter]
    fn buffer_address(&self) -> PyResult<usize> {
        self.bytes().map(|(a, _)| a).ok_or_else(gpu_error)
    }

    /// The numpy array interface over the pooled buffer (read-only unless writable).
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (address, len) = self.bytes().ok_or_else(gpu_error)?;
        let (shape, strides) = shape_of(self.layout(), len);
        let dict = PyDict::new(py);
        dict.set_item("shape", PyTuple::new(py, shape)?)?;
        dict.set_item("strides", PyTuple::new(py, strides)?)?;
        dict.set_item("typestr", "|u1")?;
        dict.set_item("data", (address, !self.writable()))?;
        dict.set_item("version", 3)?;
        Ok(dict)
    }

    /// A numpy array viewing the pixels (no copy).
    #[getter]
    fn data<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let array = numpy_asarray(py)?.call1((slf,))?;
        let this = slf.borrow();
        if this.writable() {
            let weak = pyo3::types::PyWeakrefReference::new(&array)?;
            this.views
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(weak.into_any().unbind());
        }
        Ok(array)
    }

    fn __repr__(&self) -> String {
        let l = self.layout();
        format!(
            "VideoFrame({}x{} {}, frame_number={}, {})",
            l.width(),
            l.height(),
            l.format(),
            self.frame_number(),
            if self.writable() {
                "writable"
            } else {
                "read-only"
            }
        )
    }
}

fn gpu_error() -> PyErr {
    PyValueError::new_err(
        "this frame is in GPU memory: it has no host bytes for numpy; declare the input \
         with capabilities=[\"cpu\"] so the runtime inserts a GPU-to-CPU transfer",
    )
}

/// Interleaved `float32` audio. `data` is a numpy array `(frames, channels)` over the pooled
/// samples (read-only, no copy).
#[pyclass(module = "streamlib._native", name = "AudioBuffer", frozen)]
pub struct PyAudioBuffer {
    pub(crate) buffer: AudioBuffer,
}

#[pymethods]
impl PyAudioBuffer {
    /// Channel count.
    #[getter]
    fn channels(&self) -> u16 {
        self.buffer.channels()
    }

    /// Samples per second per channel.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.buffer.sample_rate()
    }

    /// Samples per channel.
    #[getter]
    fn frames(&self) -> usize {
        self.buffer.frames()
    }

    /// Time of the first sample, ns.
    #[getter]
    fn timestamp(&self) -> u64 {
        self.buffer.timestamp_ns()
    }

    /// The numpy array interface over the samples (read-only).
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let samples = self.buffer.samples();
        let channels = usize::from(self.buffer.channels());
        let dict = PyDict::new(py);
        dict.set_item("shape", (self.buffer.frames(), channels))?;
        dict.set_item("typestr", "<f4")?;
        dict.set_item("data", (samples.as_ptr() as usize, true))?;
        dict.set_item("version", 3)?;
        Ok(dict)
    }

    /// A numpy array `(frames, channels)` viewing the samples (no copy).
    #[getter]
    fn data<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        numpy_asarray(slf.py())?.call1((slf,))
    }

    fn __repr__(&self) -> String {
        format!(
            "AudioBuffer({} frames x {} channels @ {} Hz)",
            self.buffer.frames(),
            self.buffer.channels(),
            self.buffer.sample_rate()
        )
    }
}

/// A data message: a topic and a payload.
#[pyclass(module = "streamlib._native", name = "DataMessage", frozen)]
pub struct PyDataMessage {
    pub(crate) message: DataMessage,
}

#[pymethods]
impl PyDataMessage {
    /// A message; `payload` is `str` (UTF-8) or `bytes`.
    #[new]
    #[pyo3(signature = (topic, payload, timestamp=0))]
    fn new(topic: &str, payload: &Bound<'_, PyAny>, timestamp: u64) -> PyResult<Self> {
        let bytes: Vec<u8> = if let Ok(text) = payload.extract::<String>() {
            text.into_bytes()
        } else {
            payload.extract::<Vec<u8>>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "DataMessage payload must be str or bytes, not {}",
                    type_name(payload)
                ))
            })?
        };
        Ok(Self {
            message: DataMessage::new(topic, bytes, timestamp),
        })
    }

    /// What the payload is about.
    #[getter]
    fn topic(&self) -> &str {
        &self.message.topic
    }

    /// The payload bytes.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, &self.message.payload)
    }

    /// The payload as text, if it is UTF-8.
    #[getter]
    fn text(&self) -> Option<&str> {
        self.message.as_text()
    }

    /// When it was produced, ns.
    #[getter]
    fn timestamp(&self) -> u64 {
        self.message.timestamp_ns
    }

    fn __repr__(&self) -> String {
        format!(
            "DataMessage(topic={:?}, {} bytes)",
            &*self.message.topic,
            self.message.payload.len()
        )
    }
}

/// `type(x).__name__`, for error messages.
pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}
