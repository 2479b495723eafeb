//! [`GpuContext`]: one wgpu instance, adapter, device and queue, shared by every GPU handler of
//! a runtime, plus the poller thread that drives completion callbacks.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};

use crate::GpuError;
use crate::dispatcher::GpuDispatcher;

/// Environment variable: a case-insensitive substring an adapter's name must contain
/// (`STREAMLIB_GPU_ADAPTER=llvmpipe` picks lavapipe on a machine that also has a GPU).
pub const ADAPTER_ENV: &str = "STREAMLIB_GPU_ADAPTER";

/// Environment variable: set to `1` to let GPU tests pass without an adapter (they print a
/// loud banner saying they were skipped). Unset, a test that finds no adapter fails.
pub const ALLOW_NO_GPU_ENV: &str = "STREAMLIB_ALLOW_NO_GPU";

/// How [`GpuContext::with_options`] picks its adapter.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// A case-insensitive substring the adapter's name must contain; `None` takes wgpu's
    /// choice.
    pub adapter_filter: Option<String>,
    /// Prefer a low-power adapter (integrated GPU) over a high-performance one.
    pub low_power: bool,
}

impl GpuOptions {
    /// Options from the environment: [`ADAPTER_ENV`] as the adapter filter. (The backends
    /// come from `WGPU_BACKEND`, read by wgpu itself.)
    pub fn from_env() -> Self {
        Self {
            adapter_filter: std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty()),
            low_power: false,
        }
    }
}

/// A shared handle to one GPU device: cheap to clone (one `Arc`), `Send + Sync`.
///
/// Every GPU handler of a runtime takes a clone of the same context, so their textures can be
/// passed between them by reference. Build one headless from the environment
/// ([`new`](Self::new)), with explicit [`GpuOptions`], or from a wgpu application's own
/// adapter, device and queue ([`from_wgpu`](Self::from_wgpu)).
///
/// The context registers the device-lost callback: once the device is lost, every operation
/// through the context fails with [`GpuError::DeviceLost`] instead of panicking.
#[derive(Clone)]
pub struct GpuContext {
    inner: Arc<Inner>,
}

struct Inner {
    /// Kept alive for the adapter's sake when we created it.
    _instance: Option<wgpu::Instance>,
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    lost: Arc<OnceLock<String>>,
    poller: Poller,
    dispatcher: Mutex<Option<Arc<GpuDispatcher>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.poller.stop();
    }
}

impl fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.inner.info.name)
            .field("backend", &self.inner.info.backend)
            .field("device_type", &self.inner.info.device_type)
            .field("lost", &self.inner.lost.get())
            .finish()
    }
}

impl GpuContext {
    /// A headless context chosen by the environment: backends from `WGPU_BACKEND` (through
    /// `InstanceDescriptor::new_without_display_handle_from_env`), adapter name filter from
    /// [`ADAPTER_ENV`].
    pub fn new() -> Result<Self, GpuError> {
        Self::with_options(&GpuOptions::from_env())
    }

    /// A headless context with explicit adapter options (backends still from `WGPU_BACKEND`).
    pub fn with_options(options: &GpuOptions) -> Result<Self, GpuError> {
        let descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let backends = descriptor.backends;
        let instance = wgpu::Instance::new(descriptor);
        let adapter = pick_adapter(&instance, backends, options)?;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("streamlib"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::DeviceRequest {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        // Our own device: errors outside our error scopes are logged, never a panic.
        let adapter_name = info.name.clone();
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            tracing::error!(adapter = %adapter_name, error = %error_message(&error), "uncaptured wgpu error");
        }));
        Self::build(Some(instance), adapter, device, queue)
    }

    /// Wraps the adapter, device and queue of an existing wgpu application, so streamlib's GPU
    /// handlers share its device (and its textures).
    ///
    /// This registers the device-lost callback (wgpu keeps one per device: it replaces one the
    /// application set) and starts the poller thread; it leaves the application's uncaptured
    /// error handler alone.
    pub fn from_wgpu(
        adapter: wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
    ) -> Result<Self, GpuError> {
        Self::build(None, adapter, device, queue)
    }

    fn build(
        instance: Option<wgpu::Instance>,
        adapter: wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
    ) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let limits = device.limits();
        let lost = Arc::new(OnceLock::new());
        let flag = Arc::clone(&lost);
        let adapter_name = info.name.clone();
        device.set_device_lost_callback(move |reason, message| {
            let text = format!("{reason:?}: {message}");
            tracing::error!(adapter = %adapter_name, reason = %text, "GPU device lost");
            let _ = flag.set(text);
        });
        let poller = Poller::start(device.clone())?;
        tracing::info!(
            adapter = %info.name,
            backend = ?info.backend,
            device_type = ?info.device_type,
            max_texture_dimension_2d = limits.max_texture_dimension_2d,
            "GPU context ready"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                _instance: instance,
                adapter,
                device,
                queue,
                info,
                limits,
                lost,
                poller,
                dispatcher: Mutex::new(None),
            }),
        })
    }

    /// A fresh context for a test. Not cached in a static on purpose: a context alive at
    /// process exit keeps its poller inside the driver while the driver's own exit handlers
    /// tear it down (lavapipe then crashes the finished test binary with SIGSEGV); each test's
    /// context is dropped, and its threads joined, when the test ends.
    ///
    /// Returns `Ok(Some(ctx))` when an adapter was found. When none is found it returns the
    /// [`GpuError::NoAdapter`] error, so the test fails, unless [`ALLOW_NO_GPU_ENV`] is `1`:
    /// then it prints a loud banner on stderr and returns `Ok(None)`, and the test should
    /// return early. Any other error (device creation) is returned as is.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), streamlib_gpu::GpuError> {
    /// let Some(ctx) = streamlib_gpu::GpuContext::for_tests()? else { return Ok(()) };
    /// # let _ = ctx; Ok(()) }
    /// ```
    pub fn for_tests() -> Result<Option<Self>, GpuError> {
        match Self::new() {
            Ok(ctx) => Ok(Some(ctx)),
            Err(error @ GpuError::NoAdapter { .. }) => {
                if std::env::var(ALLOW_NO_GPU_ENV).as_deref() == Ok("1") {
                    skipped_banner(&error);
                    Ok(None)
                } else {
                    Err(error)
                }
            }
            Err(error) => Err(error),
        }
    }

    /// The adapter.
    pub fn adapter(&self) -> &wgpu::Adapter {
        &self.inner.adapter
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The adapter's description (name, backend, device type, driver).
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The adapter's name (what errors name).
    pub fn adapter_name(&self) -> &str {
        &self.inner.info.name
    }

    /// The device's limits.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// Whether the device has been lost.
    pub fn is_lost(&self) -> bool {
        self.inner.lost.get().is_some()
    }

    /// `Err(DeviceLost)` once the device-lost callback has fired.
    pub fn check_alive(&self) -> Result<(), GpuError> {
        match self.inner.lost.get() {
            Some(reason) => Err(GpuError::DeviceLost {
                adapter: self.adapter_name().to_owned(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Checks that a `width`×`height` texture fits `max_texture_dimension_2d`.
    pub fn check_frame_size(&self, width: u32, height: u32) -> Result<(), GpuError> {
        let max = self.inner.limits.max_texture_dimension_2d;
        if width > max || height > max || width == 0 || height == 0 {
            return Err(GpuError::TooLarge {
                adapter: self.adapter_name().to_owned(),
                what: format!("frame {width}x{height}: side"),
                requested: u64::from(width.max(height)),
                limit: "max_texture_dimension_2d",
                max: u64::from(max),
            });
        }
        Ok(())
    }

    /// Checks that a buffer of `bytes` fits `max_buffer_size` (and, when it is bound as
    /// storage, `max_storage_buffer_binding_size`).
    pub fn check_buffer_size(&self, what: &str, bytes: u64, storage: bool) -> Result<(), GpuError> {
        let limits = &self.inner.limits;
        let (limit, max) = if storage && bytes > limits.max_storage_buffer_binding_size {
            (
                "max_storage_buffer_binding_size",
                limits.max_storage_buffer_binding_size,
            )
        } else if bytes > limits.max_buffer_size {
            ("max_buffer_size", limits.max_buffer_size)
        } else {
            return Ok(());
        };
        Err(GpuError::TooLarge {
            adapter: self.adapter_name().to_owned(),
            what: format!("{what} size in bytes"),
            requested: bytes,
            limit,
            max,
        })
    }

    /// Runs `f` inside validation and out-of-memory error scopes: what wgpu would report as an
    /// uncaptured error (a panic by default) becomes [`GpuError::Operation`].
    pub fn scoped<T>(&self, operation: &'static str, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        self.check_alive()?;
        let (value, error) = self.capture(f);
        match error {
            None => {
                self.check_alive()?;
                Ok(value)
            }
            Some(message) => Err(GpuError::Operation {
                operation,
                adapter: self.adapter_name().to_owned(),
                message,
            }),
        }
    }

    /// Runs `f` in error scopes and returns what they caught.
    fn capture<T>(&self, f: impl FnOnce() -> T) -> (T, Option<String>) {
        let device = &self.inner.device;
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        let error = validation.or(oom).map(|e| error_message(&e));
        (value, error)
    }

    /// Compiles `wgsl` and builds a compute pipeline for `entry_point` with `layout` (or an
    /// automatic layout). A shader that does not compile or validate is
    /// [`GpuError::Shader`], never a panic.
    pub fn compute_pipeline(
        &self,
        label: &str,
        wgsl: &str,
        entry_point: &str,
        layout: Option<&wgpu::PipelineLayout>,
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        self.check_alive()?;
        let device = &self.inner.device;
        let (pipeline, error) = self.capture(|| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(wgsl.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout,
                module: &module,
                entry_point: Some(entry_point),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            })
        });
        match error {
            None => Ok(pipeline),
            Some(message) => Err(GpuError::Shader {
                label: label.to_owned(),
                adapter: self.adapter_name().to_owned(),
                message,
            }),
        }
    }

    /// Submits command buffers (inside error scopes) and wakes the poller so completion
    /// callbacks (buffer maps) fire without anyone blocking on them.
    pub fn submit(
        &self,
        operation: &'static str,
        buffers: impl IntoIterator<Item = wgpu::CommandBuffer>,
    ) -> Result<wgpu::SubmissionIndex, GpuError> {
        let index = self.scoped(operation, || self.inner.queue.submit(buffers))?;
        self.inner.poller.notify();
        Ok(index)
    }

    /// Wakes the poller thread (after a `map_async`, so it polls once more).
    pub(crate) fn wake_poller(&self) {
        self.inner.poller.notify();
    }

    /// Blocks until all submitted work has finished (and its callbacks ran).
    pub fn wait_idle(&self) -> Result<(), GpuError> {
        self.check_alive()?;
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(drop)
            .map_err(|e| GpuError::Operation {
                operation: "wait for the GPU",
                adapter: self.adapter_name().to_owned(),
                message: e.to_string(),
            })?;
        self.check_alive()
    }

    /// The context's [`GpuDispatcher`]: one submission thread, shared by every GPU handler
    /// given it, so their submissions are ordered. Made on first use (again after a
    /// shutdown).
    pub fn dispatcher(&self) -> Arc<GpuDispatcher> {
        let mut slot = self
            .inner
            .dispatcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref().filter(|d| !d.is_shut_down()) {
            Some(d) => Arc::clone(d),
            None => {
                let d = Arc::new(GpuDispatcher::new());
                *slot = Some(Arc::clone(&d));
                d
            }
        }
    }

    /// A label for GPU resources: the adapter name.
    pub(crate) fn label(&self) -> &str {
        self.adapter_name()
    }
}

/// Finds the adapter: wgpu's choice, or the first whose name contains the filter.
fn pick_adapter(
    instance: &wgpu::Instance,
    backends: wgpu::Backends,
    options: &GpuOptions,
) -> Result<wgpu::Adapter, GpuError> {
    let no_adapter = |seen: Vec<wgpu::Adapter>| GpuError::NoAdapter {
        backends: format!("{backends:?}"),
        filter: options
            .adapter_filter
            .as_ref()
            .map_or_else(|| "none".to_owned(), |f| format!("'{f}'")),
        seen: if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.iter()
                .map(|a| {
                    let info = a.get_info();
                    format!("{} ({:?})", info.name, info.backend)
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    };
    if let Some(filter) = &options.adapter_filter {
        let wanted = filter.to_lowercase();
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let found = adapters
            .iter()
            .position(|a| a.get_info().name.to_lowercase().contains(&wanted));
        return match found {
            Some(i) => Ok(adapters[i].clone()),
            None => Err(no_adapter(adapters)),
        };
    }
    let request = wgpu::RequestAdapterOptions {
        power_preference: if options.low_power {
            wgpu::PowerPreference::LowPower
        } else {
            wgpu::PowerPreference::HighPerformance
        },
        ..Default::default()
    };
    match pollster::block_on(instance.request_adapter(&request)) {
        Ok(adapter) => Ok(adapter),
        Err(_) => Err(no_adapter(pollster::block_on(
            instance.enumerate_adapters(backends),
        ))),
    }
}

/// A wgpu error with its chain of causes (shader errors keep their detail there).
pub(crate) fn error_message(error: &wgpu::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[allow(
    clippy::print_stderr,
    reason = "the banner must be seen in test output"
)]
fn skipped_banner(error: &GpuError) {
    let line = "!".repeat(78);
    eprintln!(
        "\n{line}\n!!! GPU TESTS SKIPPED: no GPU adapter, and {ALLOW_NO_GPU_ENV}=1 allows it.\n\
         !!! Nothing GPU-related was tested in this run.\n!!! {error}\n{line}\n"
    );
}

/// The thread that drives wgpu's completion callbacks: it sleeps (parked) until work is
/// submitted, then blocks in `device.poll(wait_indefinitely)` until that work is done, and
/// sleeps again. No busy-waiting, and no lock on the submit path (a flag and an `unpark`).
struct Poller {
    pending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// For `unpark` without a lock.
    thread: thread::Thread,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl Poller {
    fn start(device: wgpu::Device) -> Result<Self, GpuError> {
        let pending = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&pending), Arc::clone(&stop));
        let name = "streamlib-gpupoll".to_owned();
        let handle = thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                loop {
                    if s.load(Ordering::Acquire) {
                        return;
                    }
                    if p.swap(false, Ordering::AcqRel) {
                        if let Err(error) = device.poll(wgpu::PollType::wait_indefinitely()) {
                            tracing::warn!(%error, "GPU poll failed");
                        }
                    } else {
                        thread::park();
                    }
                }
            })
            .map_err(|e| GpuError::Thread {
                name,
                reason: e.to_string(),
            })?;
        Ok(Self {
            pending,
            stop,
            thread: handle.thread().clone(),
            join: Mutex::new(Some(handle)),
        })
    }

    fn notify(&self) {
        self.pending.store(true, Ordering::Release);
        self.thread.unpark();
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let handle = self
            .join
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            handle.thread().unpark();
            if handle.join().is_err() {
                tracing::error!("GPU poller thread panicked");
            }
        }
    }
}
