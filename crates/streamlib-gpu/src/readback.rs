//! Moving frames between host and GPU memory: [`FrameUploader`] (`queue.write_texture` into a
//! pooled texture) and [`ReadbackRing`] (texture → mapped staging buffers, pipelined).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use streamlib_buffers::BuffersError;
use streamlib_clock::ClockSourceId;
use streamlib_ports::{AlphaMode, FrameLayout, FramePool, PixelFormat, VideoFrame};

use crate::{GpuContext, GpuError, GpuFramePool, GpuTexture};

/// How long a readback may take before it is reported as failed.
const READBACK_TIMEOUT: Duration = Duration::from_secs(20);

/// Checks a frame is a 4-byte-per-pixel format the GPU frames carry.
pub(crate) fn check_format(frame: &VideoFrame, handler: &'static str) -> Result<(), GpuError> {
    match frame.format() {
        PixelFormat::Rgba8 | PixelFormat::Bgra8 => Ok(()),
        other => Err(GpuError::UnsupportedFrame {
            handler,
            reason: format!("{other} frames cannot go to the GPU (supported: rgba8, bgra8)"),
        }),
    }
}

/// A frame's timing and alpha, carried across a transfer.
#[derive(Debug, Clone, Copy)]
struct FrameMeta {
    layout: FrameLayout,
    alpha: AlphaMode,
    timestamp_ns: u64,
    frame_number: u64,
    clock: ClockSourceId,
}

impl FrameMeta {
    fn of(frame: &VideoFrame, layout: FrameLayout) -> Self {
        Self {
            layout,
            alpha: frame.alpha(),
            timestamp_ns: frame.timestamp_ns(),
            frame_number: frame.frame_number(),
            clock: frame.clock_source_id(),
        }
    }

    fn stamp(&self, frame: VideoFrame) -> VideoFrame {
        frame
            .with_timing(self.timestamp_ns, self.frame_number, self.clock)
            .with_alpha(self.alpha)
    }
}

/// Uploads host frames into textures of its own [`GpuFramePool`] (created on the first frame,
/// re-created when the size changes).
#[derive(Debug)]
pub struct FrameUploader {
    name: &'static str,
    pool: Option<GpuFramePool>,
    initial: usize,
    max: usize,
}

impl FrameUploader {
    /// An uploader whose pool, named `name`, holds `initial` textures growing to `max`.
    pub fn new(name: &'static str, initial: usize, max: usize) -> Self {
        Self {
            name,
            pool: None,
            initial,
            max,
        }
    }

    /// The pool, once the first frame made it.
    pub fn pool(&self) -> Option<&GpuFramePool> {
        self.pool.as_ref()
    }

    /// Copies `frame` (RGBA8 or BGRA8 in host memory, any stride) into a pool texture and
    /// returns it as a GPU frame with the same layout format, timing and alpha. `Ok(None)`
    /// when the pool is exhausted (skip the frame).
    pub fn upload(
        &mut self,
        ctx: &GpuContext,
        frame: &VideoFrame,
    ) -> Result<Option<VideoFrame>, GpuError> {
        check_format(frame, self.name)?;
        let bytes = frame
            .cpu_bytes()
            .ok_or_else(|| GpuError::UnsupportedFrame {
                handler: self.name,
                reason: "the frame is already in GPU memory".to_owned(),
            })?;
        let (width, height) = (frame.width(), frame.height());
        let pool = match self.pool.take() {
            Some(pool) if pool.width() == width && pool.height() == height => pool,
            _ => GpuFramePool::new(ctx, self.name, width, height, self.initial, self.max)?,
        };
        let pool = self.pool.insert(pool);
        let lease = match pool.acquire() {
            Ok(lease) => lease,
            Err(GpuError::PoolExhausted { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let texture = lease.texture();
        ctx.scoped("upload a frame", || {
            // write_texture takes any bytes_per_row (the 256-byte alignment is for buffer
            // copies), so the frame's own stride goes as is: no repacking on the host.
            ctx.queue().write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: texture.texture(),
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                bytes,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(frame.stride()),
                    rows_per_image: Some(height),
                },
                wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
            );
        })?;
        // Flush the staged write now, so its staging memory is recycled even when nothing
        // downstream submits.
        ctx.submit("upload a frame", std::iter::empty())?;
        let layout = tight_layout(frame, self.name)?;
        Ok(Some(
            FrameMeta::of(frame, layout).stamp(lease.into_frame(layout)),
        ))
    }
}

fn tight_layout(frame: &VideoFrame, handler: &'static str) -> Result<FrameLayout, GpuError> {
    FrameLayout::new(frame.width(), frame.height(), frame.format()).map_err(|e| {
        GpuError::UnsupportedFrame {
            handler,
            reason: e.to_string(),
        }
    })
}

const IDLE: u8 = 0;
const PENDING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

/// Wakes threads waiting for a map callback.
#[derive(Default)]
struct MapSignal {
    lock: Mutex<()>,
    changed: Condvar,
}

struct Staging {
    buffer: wgpu::Buffer,
    state: Arc<AtomicU8>,
    meta: Option<FrameMeta>,
    submission: Option<wgpu::SubmissionIndex>,
}

/// Reads GPU frames back to host memory through a ring of staging buffers, without waiting
/// for the GPU on the frame that was just submitted.
///
/// [`submit`](Self::submit) encodes `copy_texture_to_buffer` into a free staging buffer
/// (rows padded to `COPY_BYTES_PER_ROW_ALIGNMENT`), submits it, and calls `map_async`; the
/// context's poller thread drives the map to completion. [`next`](Self::next) then turns the
/// oldest mapped buffer into a host frame from a [`FramePool`] (stripping the row padding).
/// A caller that submits frame N and collects frame N − 1 on the same call sees each frame
/// one call later, with the GPU copy of frame N overlapping everything else.
pub struct ReadbackRing {
    name: &'static str,
    slots: Vec<Staging>,
    /// Indices of submitted slots, oldest first.
    in_flight: VecDeque<usize>,
    size: (u32, u32),
    padded_row: u32,
    signal: Arc<MapSignal>,
    host: Option<FramePool>,
    depth: usize,
}

impl std::fmt::Debug for ReadbackRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadbackRing")
            .field("name", &self.name)
            .field("slots", &self.slots.len())
            .field("in_flight", &self.in_flight.len())
            .field("size", &self.size)
            .finish()
    }
}

impl ReadbackRing {
    /// A ring of `depth` staging buffers (at least 1), made for the first frame's size.
    pub fn new(name: &'static str, depth: usize) -> Self {
        let depth = depth.max(1);
        Self {
            name,
            slots: Vec::with_capacity(depth),
            in_flight: VecDeque::with_capacity(depth),
            size: (0, 0),
            padded_row: 0,
            signal: Arc::new(MapSignal::default()),
            host: None,
            depth,
        }
    }

    /// Frames submitted and not yet collected.
    pub fn pending(&self) -> usize {
        self.in_flight.len()
    }

    /// The host pool output frames come from (once made).
    pub fn host_pool(&self) -> Option<&FramePool> {
        self.host.as_ref()
    }

    /// (Re)creates the staging buffers and host pool for a `width`×`height` frame.
    fn prepare(&mut self, ctx: &GpuContext, frame: &VideoFrame) -> Result<(), GpuError> {
        let size = (frame.width(), frame.height());
        let layout = tight_layout(frame, self.name)?;
        if self.size == size
            && self.slots.len() == self.depth
            && self.host.as_ref().is_some_and(|p| p.layout() == layout)
        {
            return Ok(());
        }
        if !self.in_flight.is_empty() {
            return Err(GpuError::UnsupportedFrame {
                handler: self.name,
                reason: "frame size changed while frames were in flight; collect them first"
                    .to_owned(),
            });
        }
        let (width, height) = size;
        ctx.check_frame_size(width, height)?;
        let padded_row = (width * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
        let bytes = u64::from(padded_row) * u64::from(height);
        ctx.check_buffer_size("readback staging buffer", bytes, false)?;
        self.slots.clear();
        for _ in 0..self.depth {
            let buffer = ctx.scoped("create a readback buffer", || {
                ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some(self.name),
                    size: bytes,
                    usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
                    mapped_at_creation: false,
                })
            })?;
            self.slots.push(Staging {
                buffer,
                state: Arc::new(AtomicU8::new(IDLE)),
                meta: None,
                submission: None,
            });
        }
        if self.host.as_ref().is_none_or(|p| p.layout() != layout) {
            self.host = Some(FramePool::new(self.name, layout, 4, 8).map_err(|source| {
                GpuError::HostPool {
                    handler: self.name,
                    source,
                }
            })?);
        }
        self.size = size;
        self.padded_row = padded_row;
        Ok(())
    }

    /// Whether a staging buffer is free for [`submit`](Self::submit).
    pub fn has_free_slot(&self) -> bool {
        self.in_flight.len() < self.depth
    }

    /// Starts reading `frame` (a GPU frame) back. Fails if every staging buffer is in flight
    /// (collect one first) or the frame size changed while frames are in flight.
    pub fn submit(&mut self, ctx: &GpuContext, frame: &VideoFrame) -> Result<(), GpuError> {
        check_format(frame, self.name)?;
        let texture = GpuTexture::of(frame, self.name)?;
        self.prepare(ctx, frame)?;
        let Some(index) = (0..self.slots.len()).find(|i| !self.in_flight.contains(i)) else {
            return Err(GpuError::Readback {
                adapter: ctx.adapter_name().to_owned(),
                reason: format!(
                    "all {} staging buffers are in flight; collect a frame first",
                    self.depth
                ),
            });
        };
        let (width, height) = self.size;
        let layout = tight_layout(frame, self.name)?;
        let slot = &mut self.slots[index];
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(self.name),
            });
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: texture.texture(),
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &slot.buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(self.padded_row),
                    rows_per_image: Some(height),
                },
            },
            wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
        );
        let submission = ctx.submit("read a frame back", [encoder.finish()])?;
        slot.state.store(PENDING, Ordering::Release);
        let (state, signal) = (Arc::clone(&slot.state), Arc::clone(&self.signal));
        ctx.scoped("map a readback buffer", || {
            slot.buffer
                .map_async(wgpu::MapMode::Read, .., move |result| {
                    state.store(
                        if result.is_ok() { READY } else { FAILED },
                        Ordering::Release,
                    );
                    let _guard = signal.lock.lock().unwrap_or_else(PoisonError::into_inner);
                    signal.changed.notify_all();
                });
        })?;
        // The poller may have finished polling that submission before the map was asked for.
        ctx.wake_poller();
        slot.meta = Some(FrameMeta::of(frame, layout));
        slot.submission = Some(submission);
        self.in_flight.push_back(index);
        Ok(())
    }

    /// Whether the oldest frame in flight has been mapped (collecting it will not wait).
    pub fn oldest_ready(&self) -> bool {
        self.in_flight
            .front()
            .is_some_and(|&i| self.slots[i].state.load(Ordering::Acquire) != PENDING)
    }

    /// Collects the oldest frame in flight as a host frame, waiting for its map if `wait`
    /// (else `Ok(None)` while it is not mapped yet). `Ok(None)` too when nothing is in flight,
    /// or when the host pool is exhausted (the frame is then dropped; see
    /// [`host_pool`](Self::host_pool)'s counters).
    pub fn next(&mut self, ctx: &GpuContext, wait: bool) -> Result<Option<VideoFrame>, GpuError> {
        let Some(&index) = self.in_flight.front() else {
            return Ok(None);
        };
        if !self.oldest_ready() {
            if !wait {
                return Ok(None);
            }
            self.wait_for(ctx, index)?;
        }
        self.in_flight.pop_front();
        let slot = &mut self.slots[index];
        let state = slot.state.swap(IDLE, Ordering::AcqRel);
        let meta = slot.meta.take();
        slot.submission = None;
        if state != READY {
            return Err(GpuError::Readback {
                adapter: ctx.adapter_name().to_owned(),
                reason: "mapping the staging buffer failed".to_owned(),
            });
        }
        let (Some(meta), Some(host)) = (meta, self.host.as_ref()) else {
            slot.buffer.unmap();
            return Ok(None);
        };
        let out = match host.acquire() {
            Ok(out) => Some(out),
            Err(BuffersError::PoolExhausted { .. }) => None,
            Err(source) => {
                slot.buffer.unmap();
                return Err(GpuError::HostPool {
                    handler: self.name,
                    source,
                });
            }
        };
        let copied = out.map(|mut out| -> Result<_, GpuError> {
            let view = slot
                .buffer
                .get_mapped_range(..)
                .map_err(|e| GpuError::Readback {
                    adapter: ctx.adapter_name().to_owned(),
                    reason: e.to_string(),
                })?;
            let row = self.size.0 as usize * 4;
            let stride = meta.layout.stride() as usize;
            for (dst, src) in out
                .chunks_mut(stride)
                .zip(view.chunks(self.padded_row as usize))
            {
                dst[..row].copy_from_slice(&src[..row]);
            }
            drop(view);
            Ok(out)
        });
        slot.buffer.unmap();
        let Some(out) = copied.transpose()? else {
            return Ok(None);
        };
        Ok(Some(meta.stamp(host.frame(out))))
    }

    /// Waits (without spinning) until slot `index`'s map callback has run.
    fn wait_for(&self, ctx: &GpuContext, index: usize) -> Result<(), GpuError> {
        let slot = &self.slots[index];
        // Help the poller along: block in poll for this submission on this thread.
        if let Some(submission) = slot.submission.clone() {
            let _ = ctx.device().poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: Some(READBACK_TIMEOUT),
            });
        }
        let deadline = Instant::now() + READBACK_TIMEOUT;
        let mut guard = self
            .signal
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while slot.state.load(Ordering::Acquire) == PENDING {
            ctx.check_alive()?;
            let now = Instant::now();
            if now >= deadline {
                return Err(GpuError::Readback {
                    adapter: ctx.adapter_name().to_owned(),
                    reason: format!("the map did not complete in {READBACK_TIMEOUT:?}"),
                });
            }
            let step = (deadline - now).min(Duration::from_millis(50));
            guard = self
                .signal
                .changed
                .wait_timeout(guard, step)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(())
    }
}

/// Reads one GPU frame back into tight RGBA/BGRA bytes, waiting for it (tests, benches,
/// snapshots; allocates).
pub fn read_frame(ctx: &GpuContext, frame: &VideoFrame) -> Result<Vec<u8>, GpuError> {
    let mut ring = ReadbackRing::new("read_frame", 1);
    ring.submit(ctx, frame)?;
    let host = ring.next(ctx, true)?.ok_or_else(|| GpuError::Readback {
        adapter: ctx.adapter_name().to_owned(),
        reason: "no frame came back".to_owned(),
    })?;
    Ok(host.cpu_bytes().map(<[u8]>::to_vec).unwrap_or_default())
}
