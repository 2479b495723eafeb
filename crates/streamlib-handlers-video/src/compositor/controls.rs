//! The compositor's settings, and the handle that changes layers while it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::VideoError;

/// Most layers a compositor may have.
pub(crate) const MAX_LAYERS: usize = 64;

/// Where and how one layer is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerConfig {
    /// Canvas column of the layer's left edge (may be negative, or past the right edge).
    pub x: i32,
    /// Canvas row of the layer's top edge (may be negative, or past the bottom edge).
    pub y: i32,
    /// Global opacity, 0.0..=1.0, multiplied into the layer's own alpha. Applied as the byte
    /// `round(opacity · 255)`.
    pub opacity: f32,
    /// Stacking order: layers are drawn in ascending `z`, ties in index order (so the default,
    /// 0 for every layer, draws `layer0` at the bottom).
    pub z: i32,
    /// Whether the layer is drawn at all.
    pub visible: bool,
}

impl Default for LayerConfig {
    fn default() -> Self {
        Self {
            x: 0,
            y: 0,
            opacity: 1.0,
            z: 0,
            visible: true,
        }
    }
}

impl LayerConfig {
    /// The opacity as the byte the kernels use.
    pub(crate) fn opacity_byte(&self) -> u8 {
        // In range: validated on the way in.
        (self.opacity * 255.0).round() as u8
    }
}

/// What a layer that received no new frame this tick contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingLayer {
    /// Draw the last frame it received again (held by reference, not copied).
    #[default]
    ReuseLast,
    /// Leave the layer out of this tick's output.
    Skip,
}

/// How a [`Compositor`](crate::Compositor) is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompositorConfig {
    /// Output width in pixels, 1..=16384.
    pub width: u32,
    /// Output height in pixels, 1..=16384.
    pub height: u32,
    /// Number of layer inputs, 1..=64.
    pub layers: usize,
    /// Canvas colour under every layer, straight RGBA.
    pub background: [u8; 4],
    /// What a layer without a new frame contributes.
    pub missing: MissingLayer,
}

impl Default for CompositorConfig {
    /// 1920×1080, four layers over opaque black, reusing late layers' last frames.
    fn default() -> Self {
        Self {
            width: 1920,
            height: 1080,
            layers: 4,
            background: [0, 0, 0, 255],
            missing: MissingLayer::ReuseLast,
        }
    }
}

impl CompositorConfig {
    pub(crate) fn validate(&self) -> Result<(), VideoError> {
        VideoError::check_size("compositor", self.width, self.height)?;
        if self.layers == 0 || self.layers > MAX_LAYERS {
            return Err(VideoError::OutOfRange {
                handler: "compositor",
                what: "layers",
                value: self.layers.to_string(),
                range: "1..=64",
            });
        }
        Ok(())
    }
}

/// Layer settings shared between the compositor and its [`CompositorControls`]. A version
/// counter lets the compositor check for changes with one atomic load per frame and take the
/// lock only when something changed.
#[derive(Debug)]
pub(crate) struct SharedLayers {
    version: AtomicU64,
    layers: Mutex<Vec<LayerConfig>>,
}

impl SharedLayers {
    pub(crate) fn new(count: usize) -> Self {
        Self {
            version: AtomicU64::new(0),
            layers: Mutex::new(vec![LayerConfig::default(); count]),
        }
    }

    fn update(
        &self,
        index: usize,
        change: impl FnOnce(&mut LayerConfig),
    ) -> Result<(), VideoError> {
        let mut layers = self.layers.lock().unwrap_or_else(PoisonError::into_inner);
        let count = layers.len();
        let slot = layers.get_mut(index).ok_or(VideoError::LayerOutOfRange {
            index,
            layers: count,
        })?;
        let mut next = *slot;
        change(&mut next);
        check_opacity(next.opacity)?;
        *slot = next;
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn get(&self, index: usize) -> Result<LayerConfig, VideoError> {
        let layers = self.layers.lock().unwrap_or_else(PoisonError::into_inner);
        layers
            .get(index)
            .copied()
            .ok_or(VideoError::LayerOutOfRange {
                index,
                layers: layers.len(),
            })
    }

    /// Copies the settings into `into` if they changed since `seen`; returns the version now
    /// held. Allocates nothing (`into` has the right length).
    pub(crate) fn refresh(&self, seen: u64, into: &mut [LayerConfig]) -> u64 {
        if self.version.load(Ordering::Acquire) == seen {
            return seen;
        }
        let layers = self.layers.lock().unwrap_or_else(PoisonError::into_inner);
        into.copy_from_slice(&layers);
        // Read under the lock: every update is either in the copy and counted, or neither.
        self.version.load(Ordering::Acquire)
    }
}

fn check_opacity(opacity: f32) -> Result<(), VideoError> {
    if (0.0..=1.0).contains(&opacity) {
        Ok(())
    } else {
        Err(VideoError::OutOfRange {
            handler: "compositor",
            what: "opacity",
            value: opacity.to_string(),
            range: "0.0..=1.0",
        })
    }
}

/// Changes a running compositor's layers from any thread. Cloning is cheap; every clone
/// controls the same compositor. A change is applied between two `process` calls: each
/// output frame sees a layer's settings either entirely before or entirely after a call here.
#[derive(Debug, Clone)]
pub struct CompositorControls {
    pub(crate) shared: Arc<SharedLayers>,
    pub(crate) layers: usize,
}

impl CompositorControls {
    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// A layer's current settings.
    pub fn layer(&self, index: usize) -> Result<LayerConfig, VideoError> {
        self.shared.get(index)
    }

    /// Replaces all of a layer's settings at once.
    pub fn set_layer(&self, index: usize, layer: LayerConfig) -> Result<(), VideoError> {
        self.shared.update(index, |l| {
            *l = layer;
        })
    }

    /// Sets a layer's opacity (0.0..=1.0).
    pub fn set_opacity(&self, index: usize, opacity: f32) -> Result<(), VideoError> {
        self.shared.update(index, |l| {
            l.opacity = opacity;
        })
    }

    /// Moves a layer's top-left corner to canvas position (`x`, `y`).
    pub fn set_position(&self, index: usize, x: i32, y: i32) -> Result<(), VideoError> {
        self.shared.update(index, |l| {
            l.x = x;
            l.y = y;
        })
    }

    /// Sets a layer's stacking order.
    pub fn set_z(&self, index: usize, z: i32) -> Result<(), VideoError> {
        self.shared.update(index, |l| {
            l.z = z;
        })
    }

    /// Shows or hides a layer.
    pub fn set_visible(&self, index: usize, visible: bool) -> Result<(), VideoError> {
        self.shared.update(index, |l| {
            l.visible = visible;
        })
    }
}
