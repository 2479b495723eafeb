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
use streamlib::buffers::{PoolBufMut, PooledBuf};
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
    /// A frame taken from an output's pool (`new_frame`), not yet written and not yet viewed
    /// by numpy: writable.
    Writable {
        buf: PoolBufMut<u8>,
        /// The buffer's address, taken from the exclusive handle (numpy writes through it).
        address: usize,
    },
    /// A writable frame numpy has viewed: the buffer moved into `owner`, so that the arrays
    /// keep it alive, and every array over it descends from `root` (see [`PixelOwner`]).
    Viewed {
        owner: Py<PixelOwner>,
        root: Py<PyAny>,
    },
    /// A writable frame after `write()`: its pixels belong to the readers now.
    Written(VideoFrame),
    /// Only while `write()` publishes the pixels, or after it failed to.
    Spent,
}

/// What a [`PixelOwner`] holds.
enum Held {
    /// The pool buffer numpy writes into (the frame is not written yet, or it was written as
    /// a copy while arrays over this buffer were alive: then they keep it to themselves).
    Writable(PoolBufMut<u8>),
    /// The buffer, published without a copy: the frame's read-only arrays still view it
    /// (this reference keeps it out of its pool while they do).
    Published(#[allow(dead_code, reason = "held only to keep the buffer alive")] PooledBuf<u8>),
    /// Only while `write()` publishes it.
    Moving,
}

/// The pixels of a writable frame, once numpy views them: the base of the frame's root
/// array, which every numpy array over the frame's pixels descends from (numpy collapses a
/// view's base to the first array that is not a view of an array).
///
/// That is how `write()` knows whether an array it cannot freeze is still alive: the root's
/// reference count is the frame's own reference plus one for its cached `data` array, unless
/// a slice, an `np.asarray(frame)` or another view still holds it.
#[pyclass(module = "streamlib._native", name = "_PixelOwner", frozen)]
pub struct PixelOwner {
    held: Mutex<Held>,
    address: usize,
    len: usize,
    /// Whether the root array was made: the owner hands out one writable array, the root
    /// (`np.asarray(frame.data.base.base)` from Python gets a read-only one, which `write()`
    /// need not account for).
    rooted: std::sync::atomic::AtomicBool,
}

impl PixelOwner {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl PixelOwner {
    /// The buffer's bytes, flat (the frame's array interface shapes them).
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let first = !self.rooted.swap(true, Ordering::Relaxed);
        let readonly = !(first && matches!(*self.held(), Held::Writable(_)));
        let dict = PyDict::new(py);
        dict.set_item("shape", (self.len,))?;
        dict.set_item("typestr", "|u1")?;
        dict.set_item("data", (self.address, readonly))?;
        dict.set_item("version", 3)?;
        Ok(dict)
    }
}

/// A video frame. `data` is a numpy array over the frame's pooled buffer (no copy):
/// `(height, width, 4)` for RGBA/BGRA, `(height, width)` for gray, the raw bytes otherwise.
#[pyclass(module = "streamlib._native", name = "VideoFrame")]
pub struct PyVideoFrame {
    pub(crate) pixels: Pixels,
    layout: FrameLayout,
    /// The array `data` returns, for a frame made writable (one per frame, frozen on
    /// `write()`); received frames make a new read-only array per access.
    data: Option<Py<PyAny>>,
}

impl PyVideoFrame {
    pub(crate) fn shared(frame: VideoFrame) -> Self {
        Self {
            layout: frame.layout(),
            pixels: Pixels::Shared(frame),
            data: None,
        }
    }

    pub(crate) fn new_writable(mut buf: PoolBufMut<u8>, layout: FrameLayout) -> Self {
        let address = buf.as_mut_ptr() as usize;
        Self {
            layout,
            pixels: Pixels::Writable { buf, address },
            data: None,
        }
    }

    fn layout(&self) -> FrameLayout {
        self.layout
    }

    fn frame(&self) -> Option<&VideoFrame> {
        match &self.pixels {
            Pixels::Shared(f) | Pixels::Written(f) => Some(f),
            Pixels::Writable { .. } | Pixels::Viewed { .. } | Pixels::Spent => None,
        }
    }

    fn is_writable(&self) -> bool {
        matches!(self.pixels, Pixels::Writable { .. } | Pixels::Viewed { .. })
    }

    /// The address and length of the host bytes, if the frame is in host memory.
    fn bytes(&self, py: Python<'_>) -> Option<(usize, usize)> {
        match &self.pixels {
            Pixels::Shared(f) | Pixels::Written(f) => {
                f.cpu_bytes().map(|b| (b.as_ptr() as usize, b.len()))
            }
            Pixels::Writable { buf, address } => Some((*address, buf.len())),
            Pixels::Viewed { owner, .. } => {
                let owner = owner.bind(py).get();
                Some((owner.address, owner.len))
            }
            Pixels::Spent => None,
        }
    }

    /// The root array of a writable frame, moving its buffer into a [`PixelOwner`] first if
    /// numpy has not viewed it yet; `None` for a frame that is not writable.
    fn root<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if let Pixels::Writable { .. } = self.pixels {
            let Pixels::Writable { buf, address } =
                std::mem::replace(&mut self.pixels, Pixels::Spent)
            else {
                return Ok(None);
            };
            let len = buf.len();
            let owner = Bound::new(
                py,
                PixelOwner {
                    held: Mutex::new(Held::Writable(buf)),
                    address,
                    len,
                    rooted: Default::default(),
                },
            )?;
            // `owner` holds the buffer whatever happens next: if numpy fails, the frame is
            // spent and the buffer returns to its pool when `owner` goes.
            let root = numpy_asarray(py)?.call1((&owner,))?;
            self.pixels = Pixels::Viewed {
                owner: owner.unbind(),
                root: root.clone().unbind(),
            };
            return Ok(Some(root));
        }
        Ok(match &self.pixels {
            Pixels::Viewed { root, .. } => Some(root.bind(py).clone()),
            _ => None,
        })
    }

    /// Publishes the frame: a writable one is frozen (its arrays turn read-only); a shared one
    /// is cloned (two reference counts). `None` stamps nothing; a tick stamps a new frame.
    ///
    /// If an array over the pixels that cannot be frozen is still alive (a slice of `data`,
    /// `np.asarray(frame)`), the pixels are copied into `spare(layout)` (a pool buffer, or
    /// a new one when it has none) and the copy is published (counted in
    /// [`BYTES_COPIED`]): the arrays left behind keep the old buffer, which no reader sees.
    pub(crate) fn take_for_write(
        &mut self,
        py: Python<'_>,
        tick: Option<&TimedTick>,
        spare: impl FnOnce(FrameLayout) -> Option<PoolBufMut<u8>>,
    ) -> PyResult<VideoFrame> {
        let layout = self.layout;
        let stamp = |frame: VideoFrame| match tick {
            Some(t) => frame.with_tick(t),
            None => frame,
        };
        let published = match std::mem::replace(&mut self.pixels, Pixels::Spent) {
            Pixels::Shared(f) => {
                self.pixels = Pixels::Shared(f.clone());
                return Ok(f);
            }
            Pixels::Written(f) => {
                self.pixels = Pixels::Written(f.clone());
                return Ok(f);
            }
            Pixels::Spent => return Err(PyRuntimeError::new_err("this frame is being written")),
            Pixels::Writable { buf, .. } => buf.freeze(),
            Pixels::Viewed { owner, root } => {
                // Freeze first, before anything that can fail: from here on no array this
                // frame made writes to the pixels readers get.
                let frozen =
                    self.data.as_ref().is_none_or(|d| freeze(d.bind(py))) & freeze(root.bind(py));
                // SAFETY: `root` is a live object (the frame holds it) and the GIL is held.
                let refs = unsafe { pyo3::ffi::Py_REFCNT(root.as_ptr()) };
                let ours = 1 + isize::from(self.data.is_some());
                let owner = owner.bind(py).get();
                let mut held = owner.held();
                if frozen && refs == ours {
                    // Only the frame's own, frozen arrays view the buffer: publish it as is,
                    // the owner keeping a reference for them.
                    let Held::Writable(buf) = std::mem::replace(&mut *held, Held::Moving) else {
                        return Err(PyRuntimeError::new_err("this frame was already written"));
                    };
                    let buf = buf.freeze();
                    *held = Held::Published(buf.clone());
                    buf
                } else {
                    let Held::Writable(buf) = &*held else {
                        return Err(PyRuntimeError::new_err("this frame was already written"));
                    };
                    let copy = copy_out(buf, spare(layout));
                    drop(held);
                    // The arrays left behind view the old buffer; `data` views the copy.
                    self.data = None;
                    copy
                }
            }
        };
        let frame = VideoFrame::cpu(layout, published)
            .map(stamp)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        self.pixels = Pixels::Written(frame.clone());
        Ok(frame)
    }
}

/// Makes `array` read-only; whether it is.
fn freeze(array: &Bound<'_, PyAny>) -> bool {
    array
        .getattr("flags")
        .and_then(|flags| flags.setattr("writeable", false))
        // A flags object keeps the flags it was made with: ask the array again.
        .and_then(|()| {
            array
                .getattr("flags")?
                .getattr("writeable")?
                .extract::<bool>()
        })
        .is_ok_and(|writeable| !writeable)
}

/// A copy of `buf`, in `spare` if there is one (and it is large enough), else in a new buffer;
/// counted in [`BYTES_COPIED`].
fn copy_out(buf: &PoolBufMut<u8>, spare: Option<PoolBufMut<u8>>) -> PooledBuf<u8> {
    let len = buf.len();
    BYTES_COPIED.fetch_add(len as u64, Ordering::Relaxed);
    match spare {
        Some(mut copy) if copy.len() >= len => {
            copy[..len].copy_from_slice(buf);
            copy.freeze()
        }
        _ => PooledBuf::from_vec(buf.to_vec()),
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

pub(crate) fn numpy_ndarray<'py>(
    py: Python<'py>,
) -> PyResult<&'py Bound<'py, pyo3::types::PyType>> {
    static NDARRAY: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> = pyo3::sync::PyOnceLock::new();
    NDARRAY.import(py, "numpy", "ndarray")
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
        self.is_writable()
    }

    /// The address of the pooled buffer (what `data.ctypes.data` equals: no copy).
    #[getter]
    fn buffer_address(&self, py: Python<'_>) -> PyResult<usize> {
        self.bytes(py).map(|(a, _)| a).ok_or_else(gpu_error)
    }

    /// The numpy array interface over the pooled buffer: read-only unless the frame is
    /// writable (from `new_frame`, not yet written).
    #[getter]
    fn __array_interface__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let mut this = slf.try_borrow_mut().map_err(|_| {
            PyRuntimeError::new_err("this frame is being written: it has no array interface now")
        })?;
        // A writable frame's arrays all view its root array (so that `write()` can tell
        // whether any is still alive); a read-only frame's view the pixels directly.
        let root = this.root(py)?;
        let (address, len) = this.bytes(py).ok_or_else(gpu_error)?;
        let (shape, strides) = shape_of(this.layout(), len);
        let dict = PyDict::new(py);
        dict.set_item("shape", PyTuple::new(py, shape)?)?;
        dict.set_item("strides", PyTuple::new(py, strides)?)?;
        dict.set_item("typestr", "|u1")?;
        match root {
            Some(root) => dict.set_item("data", root)?,
            None => dict.set_item("data", (address, true))?,
        }
        dict.set_item("version", 3)?;
        Ok(dict)
    }

    /// A numpy array viewing the pixels (no copy). A writable frame has one, the same object
    /// at every access, turned read-only by `write()`.
    #[getter]
    fn data<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if let Some(data) = &slf.borrow().data {
            return Ok(data.bind(py).clone());
        }
        let array = numpy_asarray(py)?.call1((slf,))?;
        let mut this = slf.borrow_mut();
        if this.is_writable() {
            this.data = Some(array.clone().unbind());
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
            if self.is_writable() {
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
