use std::any::Any;
use std::fmt;
use std::sync::Arc;

use streamlib_buffers::{BufferPool, BuffersError, PoolBufMut, PooledBuf};
use streamlib_clock::{ClockSourceId, TimedTick};

use crate::{FrameError, FrameLayout, MemorySpace, Message, OutputPort};

/// How a frame's colour relates to its alpha channel. Handlers that blend must honour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AlphaMode {
    /// Colour channels are independent of alpha (what cameras, files and most APIs produce).
    #[default]
    Straight,
    /// Colour channels are already multiplied by alpha (what 2D rasterisers produce).
    Premultiplied,
}

/// A GPU-resident payload. Lower crates know only this trait; `streamlib-gpu` implements it
/// for its textures and buffers and downcasts through [`GpuResource::as_any`].
pub trait GpuResource: Any + Send + Sync + fmt::Debug {
    /// Which device or backend holds it (for errors and stats).
    fn device_label(&self) -> &str;
    /// Bytes of GPU memory the resource occupies.
    fn byte_size(&self) -> usize;
    /// For downcasting to the concrete type.
    fn as_any(&self) -> &dyn Any;
}

/// A shared handle to a GPU resource (cloning bumps a reference count).
#[derive(Clone, Debug)]
pub struct GpuFrame(Arc<dyn GpuResource>);

impl GpuFrame {
    /// Wraps a resource. GPU pools pre-create these so that steady state allocates nothing.
    pub fn new(resource: Arc<dyn GpuResource>) -> Self {
        Self(resource)
    }

    /// The resource.
    pub fn resource(&self) -> &dyn GpuResource {
        &*self.0
    }

    /// Downcasts to the concrete resource type.
    pub fn downcast_ref<R: GpuResource>(&self) -> Option<&R> {
        self.0.as_any().downcast_ref::<R>()
    }
}

/// A frame's pixels: host memory from a pool, or a GPU resource.
#[derive(Clone, Debug)]
pub enum FrameData {
    /// Bytes in host memory.
    Cpu(PooledBuf<u8>),
    /// A GPU resource.
    Gpu(GpuFrame),
}

/// A video frame. Cloning shares the pixels (a reference-count increment), never copies them.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    layout: FrameLayout,
    alpha: AlphaMode,
    timestamp_ns: u64,
    frame_number: u64,
    clock_source_id: ClockSourceId,
    data: FrameData,
}

impl VideoFrame {
    /// A frame over host memory. Fails, stating the numbers, if `data` is too small for the
    /// layout.
    pub fn cpu(layout: FrameLayout, data: PooledBuf<u8>) -> Result<Self, FrameError> {
        layout.check_buffer(data.len())?;
        Ok(Self::with_data(layout, FrameData::Cpu(data)))
    }

    /// A frame over a GPU resource.
    pub fn gpu(layout: FrameLayout, resource: GpuFrame) -> Self {
        Self::with_data(layout, FrameData::Gpu(resource))
    }

    fn with_data(layout: FrameLayout, data: FrameData) -> Self {
        Self {
            layout,
            alpha: AlphaMode::default(),
            timestamp_ns: 0,
            frame_number: 0,
            clock_source_id: ClockSourceId(0),
            data,
        }
    }

    /// Stamps the frame with a tick's time, frame number and clock.
    pub fn with_tick(mut self, tick: &TimedTick) -> Self {
        self.timestamp_ns = tick.timestamp;
        self.frame_number = tick.frame_number;
        self.clock_source_id = tick.clock_source_id;
        self
    }

    /// Sets time, frame number and clock explicitly.
    pub fn with_timing(
        mut self,
        timestamp_ns: u64,
        frame_number: u64,
        clock_source_id: ClockSourceId,
    ) -> Self {
        self.timestamp_ns = timestamp_ns;
        self.frame_number = frame_number;
        self.clock_source_id = clock_source_id;
        self
    }

    /// Declares how colour relates to alpha.
    pub fn with_alpha(mut self, alpha: AlphaMode) -> Self {
        self.alpha = alpha;
        self
    }

    /// Size, format and stride.
    pub fn layout(&self) -> FrameLayout {
        self.layout
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.layout.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.layout.height()
    }

    /// Pixel format.
    pub fn format(&self) -> crate::PixelFormat {
        self.layout.format()
    }

    /// Bytes per row of the first plane.
    pub fn stride(&self) -> u32 {
        self.layout.stride()
    }

    /// Alpha convention.
    pub fn alpha(&self) -> AlphaMode {
        self.alpha
    }

    /// Presentation time in ns, in the timescale of the clock named by
    /// [`clock_source_id`](Self::clock_source_id).
    pub fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }

    /// Frame number (the tick it was produced on).
    pub fn frame_number(&self) -> u64 {
        self.frame_number
    }

    /// The clock whose timescale the timestamp uses.
    pub fn clock_source_id(&self) -> ClockSourceId {
        self.clock_source_id
    }

    /// The pixels.
    pub fn data(&self) -> &FrameData {
        &self.data
    }

    /// Where the pixels live.
    pub fn memory(&self) -> MemorySpace {
        match self.data {
            FrameData::Cpu(_) => MemorySpace::Cpu,
            FrameData::Gpu(_) => MemorySpace::Gpu,
        }
    }

    /// Host bytes, if the frame is in host memory.
    pub fn cpu_bytes(&self) -> Option<&[u8]> {
        match &self.data {
            FrameData::Cpu(buf) => Some(buf),
            FrameData::Gpu(_) => None,
        }
    }

    /// The pooled host buffer, if any.
    pub fn cpu_buffer(&self) -> Option<&PooledBuf<u8>> {
        match &self.data {
            FrameData::Cpu(buf) => Some(buf),
            FrameData::Gpu(_) => None,
        }
    }

    /// The GPU resource, if any.
    pub fn gpu_frame(&self) -> Option<&GpuFrame> {
        match &self.data {
            FrameData::Gpu(gpu) => Some(gpu),
            FrameData::Cpu(_) => None,
        }
    }
}

/// The fewest frames a provided pool is asked for by [`FramePool::fit_output`]: what the graph
/// needs, or this when the producer's own pool was sized larger (a provider's memory is
/// shared and finite, so it is not asked for the producer's generous default).
const POOL_FLOOR: usize = 4;

/// A pool of host frame buffers of one layout.
#[derive(Clone, Debug)]
pub struct FramePool {
    layout: FrameLayout,
    pool: BufferPool<u8>,
    /// Whether `pool` came from the output's [`PoolProvider`](crate::PoolProvider).
    provided: bool,
}

impl FramePool {
    /// `initial` buffers now, growing to `max` if frames are held longer than expected.
    pub fn new(
        name: impl Into<String>,
        layout: FrameLayout,
        initial: usize,
        max: usize,
    ) -> Result<Self, BuffersError> {
        let pool = BufferPool::new(name, layout.buffer_len(), initial, max)?;
        Ok(Self {
            layout,
            pool,
            provided: false,
        })
    }

    /// The pool `output`'s provider supplies for `max` frames of `layout`, if it has one that
    /// does.
    fn provided<T: Message>(
        name: &str,
        layout: FrameLayout,
        max: usize,
        output: &OutputPort<T>,
    ) -> Option<Self> {
        let pool = output
            .pool_provider()?
            .pool(name, layout.buffer_len(), max)?;
        (pool.buffer_len() == layout.buffer_len() && pool.capacity() >= max).then_some(Self {
            layout,
            pool,
            provided: true,
        })
    }

    /// A pool for the frames of `output`, sized from the graph: its most buffers are
    /// [`OutputPort::pool_capacity`]`(at_least)`, `initial` of them (or fewer, if that is
    /// more) allocated now. Create it once `output` is connected. When the output has a
    /// [`PoolProvider`](crate::PoolProvider) that supplies one, that pool is used instead.
    pub fn for_output<T: Message>(
        name: impl Into<String>,
        layout: FrameLayout,
        initial: usize,
        at_least: usize,
        output: &OutputPort<T>,
    ) -> Result<Self, BuffersError> {
        let name = name.into();
        let max = output.pool_capacity(at_least);
        if let Some(provided) = Self::provided(&name, layout, max, output) {
            return Ok(provided);
        }
        Self::new(name, layout, initial.clamp(1, max), max)
    }

    /// Raises the pool's maximum to what `output` needs now that it is connected
    /// ([`OutputPort::pool_capacity`], never below the current maximum), by replacing the
    /// pool when it is too small (frames of the old one stay valid). For producers whose pool
    /// exists before wiring: call it in `on_start`. Returns whether the pool was replaced.
    ///
    /// When the output has a [`PoolProvider`](crate::PoolProvider) that supplies a pool, the
    /// pool is replaced by that one (once).
    pub fn fit_output<T: Message>(&mut self, output: &OutputPort<T>) -> Result<bool, BuffersError> {
        if !self.provided {
            let max = output.pool_capacity(self.pool.capacity().min(POOL_FLOOR));
            if let Some(provided) = Self::provided(self.pool.name(), self.layout, max, output) {
                *self = provided;
                return Ok(true);
            }
        }
        let needed = output.pool_capacity(self.pool.capacity());
        if needed <= self.pool.capacity() {
            return Ok(false);
        }
        let initial = self.pool.allocated().clamp(1, needed);
        *self = Self::new(self.pool.name().to_owned(), self.layout, initial, needed)?;
        Ok(true)
    }

    /// A buffer for the next frame on `output`, or `None` when the pool is empty: skip the
    /// frame; the skip is counted on `output` (see [`OutputPort::acquire_or_skip`]).
    pub fn acquire_for<T: Message>(&self, output: &OutputPort<T>) -> Option<PoolBufMut<u8>> {
        output.acquire_or_skip(&self.pool)
    }

    /// The layout every buffer fits.
    pub fn layout(&self) -> FrameLayout {
        self.layout
    }

    /// A buffer to fill; never blocks (see [`BufferPool::acquire`]).
    pub fn acquire(&self) -> Result<PoolBufMut<u8>, BuffersError> {
        self.pool.acquire()
    }

    /// Turns a filled buffer from this pool into a frame.
    pub fn frame(&self, filled: PoolBufMut<u8>) -> VideoFrame {
        VideoFrame::with_data(self.layout, FrameData::Cpu(filled.freeze()))
    }

    /// The underlying pool (for its counters).
    pub fn pool(&self) -> &BufferPool<u8> {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::PixelFormat;

    #[test]
    fn too_small_buffer_states_numbers() {
        let layout = FrameLayout::new(2, 2, PixelFormat::Rgba8).unwrap();
        let err = VideoFrame::cpu(layout, PooledBuf::from_vec(vec![0; 15])).unwrap_err();
        assert!(err.to_string().contains("15 bytes"), "{err}");
        assert!(err.to_string().contains("16 bytes are needed"), "{err}");
    }

    #[test]
    fn clones_share_pixels() {
        let layout = FrameLayout::new(2, 2, PixelFormat::Gray8).unwrap();
        let pool = FramePool::new("t", layout, 1, 1).unwrap();
        let frame = pool.frame(pool.acquire().unwrap());
        let copy = frame.clone();
        assert!(
            frame
                .cpu_buffer()
                .unwrap()
                .ptr_eq(copy.cpu_buffer().unwrap())
        );
        assert_eq!(frame.memory(), MemorySpace::Cpu);
        drop((frame, copy));
        assert_eq!(pool.pool().available(), 1);
    }

    /// Hands out one pool, made on first request, and counts requests.
    struct OnePool(std::sync::Mutex<Option<BufferPool<u8>>>, usize);
    impl crate::PoolProvider for OnePool {
        fn pool(&self, name: &str, buffer_len: usize, max: usize) -> Option<BufferPool<u8>> {
            if buffer_len > self.1 {
                return None;
            }
            let mut pool = self.0.lock().unwrap();
            Some(
                pool.get_or_insert_with(|| {
                    BufferPool::new(format!("provided {name}"), buffer_len, max, max).unwrap()
                })
                .clone(),
            )
        }
    }

    #[test]
    fn a_provided_pool_replaces_the_producers_own() {
        let layout = FrameLayout::new(2, 2, PixelFormat::Rgba8).unwrap();
        let output = OutputPort::<VideoFrame>::new("video", crate::MemoryCaps::CPU);
        let provider = Arc::new(OnePool(std::sync::Mutex::new(None), 16));
        output.set_pool_provider(Some(provider.clone()));
        let mut pool = FramePool::new("tp", layout, 1, 8).unwrap();
        assert!(
            pool.fit_output(&output).unwrap(),
            "replaced by the provided pool"
        );
        assert_eq!(pool.pool().name(), "provided tp");
        assert!(!pool.fit_output(&output).unwrap(), "only once");
        let fresh = FramePool::for_output("fresh", layout, 1, 1, &output).unwrap();
        assert!(fresh.pool().name().starts_with("provided"));
        // A provider that cannot supply this size leaves the producer's own pool.
        let big = FrameLayout::new(4, 4, PixelFormat::Rgba8).unwrap();
        let own = FramePool::for_output("big", big, 1, 1, &output).unwrap();
        assert_eq!(own.pool().name(), "big");
        output.set_pool_provider(None);
        let own = FramePool::for_output("again", layout, 1, 1, &output).unwrap();
        assert_eq!(own.pool().name(), "again");
    }
}
