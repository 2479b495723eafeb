//! GPU frames: pooled RGBA8 textures behind `streamlib_ports::GpuResource`, and the pool that
//! pre-allocates them (the plan's GPU ring buffer).

use std::any::Any;
use std::fmt;
use std::sync::atomic::{self, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use streamlib_ports::{FrameLayout, GpuFrame, GpuResource, VideoFrame};

use crate::{GpuContext, GpuError};

/// The texture format of every GPU frame: 8-bit RGBA, unsigned normalised. The bytes are
/// stored as they are in host memory, so a `Bgra8` frame keeps its byte order (its layout says
/// which it is).
pub const GPU_FRAME_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// The usages of every GPU frame texture: written and read by compute shaders, copied to and
/// from buffers.
pub const GPU_FRAME_USAGE: wgpu::TextureUsages = wgpu::TextureUsages::STORAGE_BINDING
    .union(wgpu::TextureUsages::TEXTURE_BINDING)
    .union(wgpu::TextureUsages::COPY_SRC)
    .union(wgpu::TextureUsages::COPY_DST);

/// One GPU frame's pixels: a `width`×`height` [`GPU_FRAME_FORMAT`] texture and its view.
///
/// Reached from a [`VideoFrame`] with [`GpuTexture::of`]. Pooled textures go back to their
/// [`GpuFramePool`] when the last frame referring to them drops.
pub struct GpuTexture {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    width: u32,
    height: u32,
    device_label: String,
}

impl GpuTexture {
    /// Creates a texture of `width`×`height` on `ctx` (checked against the device's limits).
    pub fn new(ctx: &GpuContext, label: &str, width: u32, height: u32) -> Result<Self, GpuError> {
        ctx.check_frame_size(width, height)?;
        let texture = ctx.scoped("create a frame texture", || {
            ctx.device().create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: GPU_FRAME_FORMAT,
                usage: GPU_FRAME_USAGE,
                view_formats: &[],
            })
        })?;
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Self {
            texture,
            view,
            width,
            height,
            device_label: ctx.label().to_owned(),
        })
    }

    /// The texture behind a GPU frame; an error naming `handler` if the frame is in host
    /// memory or holds another kind of GPU resource.
    pub fn of<'a>(frame: &'a VideoFrame, handler: &'static str) -> Result<&'a Self, GpuError> {
        let gpu = frame
            .gpu_frame()
            .ok_or_else(|| GpuError::UnsupportedFrame {
                handler,
                reason: "received a CPU frame where a GPU frame was expected (connect through a \
                     CpuToGpu transfer)"
                    .to_owned(),
            })?;
        gpu.downcast_ref::<GpuTexture>()
            .ok_or_else(|| GpuError::UnsupportedFrame {
                handler,
                reason: format!(
                    "the GPU frame holds a resource streamlib-gpu does not know (from '{}')",
                    gpu.resource().device_label()
                ),
            })
    }

    /// The wgpu texture.
    pub fn texture(&self) -> &wgpu::Texture {
        &self.texture
    }

    /// A view of the whole texture.
    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
}

impl fmt::Debug for GpuTexture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GpuTexture({}x{} on {})",
            self.width, self.height, self.device_label
        )
    }
}

impl GpuResource for GpuTexture {
    fn device_label(&self) -> &str {
        &self.device_label
    }

    fn byte_size(&self) -> usize {
        self.width as usize * self.height as usize * 4
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct PoolShared {
    ctx: GpuContext,
    name: String,
    width: u32,
    height: u32,
    /// Created textures; a slot is free when the pool holds its only reference.
    slots: Box<[OnceLock<Arc<GpuTexture>>]>,
    /// Set while one acquirer hands a slot out, so two cannot take the same free slot.
    claimed: Box<[AtomicBool]>,
    /// Slots handed to creators (filled ones, and ones being filled).
    reserved: AtomicUsize,
    /// Textures created.
    created: AtomicUsize,
    grown: AtomicU64,
    exhausted: AtomicU64,
}

/// A pool of GPU frame textures of one size: the GPU ring buffer.
///
/// Acquire a free texture ([`acquire`](Self::acquire)), fill it (a copy, a compute pass),
/// publish it as a [`VideoFrame`] ([`GpuTextureLease::into_frame`]); it returns to the pool
/// when the last clone of that frame drops. `initial` textures are created up front; while
/// fewer than `max` exist an empty pool creates one more (counted in
/// [`grown`](Self::grown): a warm-up cost), and at `max` [`acquire`](Self::acquire) fails at
/// once with [`GpuError::PoolExhausted`]: the handler skips that frame and counts it, as with
/// the host `FramePool`. At steady state nothing is created: acquiring scans the slots for
/// one whose only owner is the pool (an atomic load each) and hands out a clone of its `Arc`.
///
/// Ordering: a texture is free once every frame using it dropped. Handlers drop frames only
/// after submitting the work that reads them, and all submissions of a context go through one
/// queue in order, so the next writer's work runs after the last reader's.
#[derive(Clone)]
pub struct GpuFramePool {
    shared: Arc<PoolShared>,
}

impl fmt::Debug for GpuFramePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuFramePool")
            .field("name", &self.shared.name)
            .field("size", &(self.shared.width, self.shared.height))
            .field("created", &self.textures_created())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl GpuFramePool {
    /// A pool named `name` of `width`×`height` textures: `initial` created now, up to `max`.
    pub fn new(
        ctx: &GpuContext,
        name: impl Into<String>,
        width: u32,
        height: u32,
        initial: usize,
        max: usize,
    ) -> Result<Self, GpuError> {
        let name = name.into();
        if initial == 0 || initial > max {
            return Err(GpuError::InvalidPoolConfig {
                pool: name,
                initial,
                max,
            });
        }
        ctx.check_frame_size(width, height)?;
        let shared = Arc::new(PoolShared {
            ctx: ctx.clone(),
            name,
            width,
            height,
            slots: (0..max).map(|_| OnceLock::new()).collect(),
            claimed: (0..max).map(|_| AtomicBool::new(false)).collect(),
            reserved: AtomicUsize::new(initial),
            created: AtomicUsize::new(0),
            grown: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
        });
        for i in 0..initial {
            let texture = Arc::new(GpuTexture::new(ctx, &shared.name, width, height)?);
            let _ = shared.slots[i].set(texture);
            shared.created.fetch_add(1, Ordering::Release);
        }
        Ok(Self { shared })
    }

    /// A free texture to fill; never blocks.
    pub fn acquire(&self) -> Result<GpuTextureLease, GpuError> {
        let s = &*self.shared;
        s.ctx.check_alive()?;
        let reserved = s.reserved.load(Ordering::Acquire).min(s.slots.len());
        for (slot, claimed) in s.slots[..reserved].iter().zip(&s.claimed[..reserved]) {
            let Some(texture) = slot.get() else { continue };
            if Arc::strong_count(texture) != 1 || claimed.swap(true, Ordering::Acquire) {
                continue;
            }
            let free = Arc::strong_count(texture) == 1;
            let lease = free.then(|| {
                // Pairs with the release decrement of the last frame that dropped it.
                atomic::fence(Ordering::Acquire);
                GpuTextureLease {
                    texture: Arc::clone(texture),
                }
            });
            claimed.store(false, Ordering::Release);
            if let Some(lease) = lease {
                return Ok(lease);
            }
        }
        self.grow()
    }

    fn grow(&self) -> Result<GpuTextureLease, GpuError> {
        let s = &*self.shared;
        let max = s.slots.len();
        let mut count = s.reserved.load(Ordering::Relaxed);
        let index = loop {
            if count >= max {
                s.exhausted.fetch_add(1, Ordering::Relaxed);
                return Err(GpuError::PoolExhausted {
                    pool: s.name.clone(),
                    capacity: max,
                    width: s.width,
                    height: s.height,
                });
            }
            match s.reserved.compare_exchange_weak(
                count,
                count + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break count,
                Err(actual) => count = actual,
            }
        };
        let texture = Arc::new(GpuTexture::new(&s.ctx, &s.name, s.width, s.height)?);
        // The lease's clone exists before the slot is visible: no other acquirer sees it free.
        let lease = GpuTextureLease {
            texture: Arc::clone(&texture),
        };
        let _ = s.slots[index].set(texture);
        s.created.fetch_add(1, Ordering::Release);
        s.grown.fetch_add(1, Ordering::Relaxed);
        Ok(lease)
    }

    /// The context the textures live on.
    pub fn context(&self) -> &GpuContext {
        &self.shared.ctx
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Texture width.
    pub fn width(&self) -> u32 {
        self.shared.width
    }

    /// Texture height.
    pub fn height(&self) -> u32 {
        self.shared.height
    }

    /// Most textures the pool may hold.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// Textures created so far (up front and grown): the allocation counter.
    pub fn textures_created(&self) -> usize {
        self.shared.created.load(Ordering::Acquire)
    }

    /// Textures free right now.
    pub fn available(&self) -> usize {
        let reserved = self
            .shared
            .reserved
            .load(Ordering::Acquire)
            .min(self.capacity());
        self.shared.slots[..reserved]
            .iter()
            .filter(|slot| slot.get().is_some_and(|t| Arc::strong_count(t) == 1))
            .count()
    }

    /// Textures created after construction because the pool was empty.
    pub fn grown(&self) -> u64 {
        self.shared.grown.load(Ordering::Relaxed)
    }

    /// Acquisitions refused because the pool was at its maximum.
    pub fn exhausted(&self) -> u64 {
        self.shared.exhausted.load(Ordering::Relaxed)
    }
}

/// A pool texture held by one writer; publish it with [`into_frame`](Self::into_frame), or
/// drop it to give it back unused.
#[derive(Debug)]
pub struct GpuTextureLease {
    texture: Arc<GpuTexture>,
}

impl GpuTextureLease {
    /// The texture to fill.
    pub fn texture(&self) -> &GpuTexture {
        &self.texture
    }

    /// Publishes the texture as a frame of `layout` (its width and height must be the
    /// texture's; the format says how to read the four bytes of each pixel). No allocation:
    /// the frame shares the pool's `Arc`.
    pub fn into_frame(self, layout: FrameLayout) -> VideoFrame {
        VideoFrame::gpu(layout, GpuFrame::new(self.texture))
    }
}
