use thiserror::Error;

/// Errors from the GPU context, pools, transfers and kernels. None of them panics: a handler
/// turns them into a `HandlerError` and the runtime's restart policy applies.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GpuError {
    /// No adapter matched: none on the backends tried, or none whose name contains the filter.
    #[error(
        "no GPU adapter found (backends tried: {backends}; adapter filter {filter}; adapters \
         seen: {seen}). Install a Vulkan driver (Debian: mesa-vulkan-drivers for lavapipe), set \
         WGPU_BACKEND (vulkan, gl) or change STREAMLIB_GPU_ADAPTER"
    )]
    NoAdapter {
        /// The backends the instance was created with (`WGPU_BACKEND`, or all).
        backends: String,
        /// The `STREAMLIB_GPU_ADAPTER` substring, quoted, or `none`.
        filter: String,
        /// Names of the adapters that were found but did not match, or `none`.
        seen: String,
    },
    /// The adapter refused to create a device.
    #[error("adapter '{adapter}' could not create a device: {reason}")]
    DeviceRequest {
        /// Adapter name.
        adapter: String,
        /// What wgpu said.
        reason: String,
    },
    /// The device was lost (driver reset, `destroy`, out of memory); every later call fails
    /// with this. Create a new [`GpuContext`](crate::GpuContext).
    #[error("GPU device on adapter '{adapter}' was lost ({reason}); create a new GpuContext")]
    DeviceLost {
        /// Adapter name.
        adapter: String,
        /// Why, as reported by the device-lost callback.
        reason: String,
    },
    /// A frame or buffer larger than the device allows.
    #[error(
        "{what} of {requested} exceeds adapter '{adapter}' limit {limit} = {max} (use smaller \
         frames or another adapter)"
    )]
    TooLarge {
        /// Adapter name.
        adapter: String,
        /// What was asked for (e.g. `"frame 20000x20"`, `"staging buffer"`).
        what: String,
        /// The size asked for (pixels for a side, bytes for a buffer).
        requested: u64,
        /// The wgpu limit that refuses it (`max_texture_dimension_2d`, `max_buffer_size`, …).
        limit: &'static str,
        /// The limit's value on this device.
        max: u64,
    },
    /// A WGSL shader failed to compile or its pipeline failed validation.
    #[error("shader '{label}' on adapter '{adapter}' failed to compile: {message}")]
    Shader {
        /// The shader's label.
        label: String,
        /// Adapter name.
        adapter: String,
        /// The compiler's or validator's message.
        message: String,
    },
    /// wgpu reported a validation or out-of-memory error while encoding or submitting work.
    #[error("GPU operation '{operation}' on adapter '{adapter}' failed: {message}")]
    Operation {
        /// What was being done.
        operation: &'static str,
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        message: String,
    },
    /// A frame the GPU code cannot take: wrong pixel format, or in the wrong memory.
    #[error("{handler}: {reason}")]
    UnsupportedFrame {
        /// Who refused it.
        handler: &'static str,
        /// Why.
        reason: String,
    },
    /// Every texture of a GPU frame pool is in use and it may not grow further. A realtime
    /// producer skips this frame (and counts it).
    #[error(
        "GPU frame pool '{pool}' is exhausted: all {capacity} textures of {width}x{height} are in \
         use; raise its max or release frames sooner"
    )]
    PoolExhausted {
        /// Pool name.
        pool: String,
        /// Textures the pool may hold.
        capacity: usize,
        /// Texture width.
        width: u32,
        /// Texture height.
        height: u32,
    },
    /// A pool was configured with impossible sizes.
    #[error(
        "GPU frame pool '{pool}' is misconfigured: initial {initial}, max {max} (need 1 <= \
         initial <= max)"
    )]
    InvalidPoolConfig {
        /// Pool name.
        pool: String,
        /// Textures created up front.
        initial: usize,
        /// Upper bound.
        max: usize,
    },
    /// Mapping a staging buffer for readback failed, or did not finish in time.
    #[error("readback on adapter '{adapter}' failed: {reason}")]
    Readback {
        /// Adapter name.
        adapter: String,
        /// Why.
        reason: String,
    },
    /// A setting out of range (a blur sigma or radius, a layer count).
    #[error("{handler}: {reason}")]
    Config {
        /// Who refused it.
        handler: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A host frame pool could not be created or used.
    #[error("{handler}: {source}")]
    HostPool {
        /// Who used it.
        handler: &'static str,
        /// The pool's error.
        #[source]
        source: streamlib_buffers::BuffersError,
    },
    /// A thread the GPU code needs could not be started.
    #[error("could not start thread '{name}': {reason}")]
    Thread {
        /// Thread name.
        name: String,
        /// The OS error.
        reason: String,
    },
}
