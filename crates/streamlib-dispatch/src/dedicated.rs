//! [`DedicatedThreadDispatcher`]: one OS thread per unit, optionally pinned and real-time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle, Thread};

use crate::gate::{Begin, GatedUnit};
use crate::{Activation, DispatchError, Dispatcher, WorkUnit};

const KIND: &str = "dedicated";

/// Linux keeps 15 bytes of a thread name (16 with the NUL).
const THREAD_NAME_MAX: usize = 15;

/// Gives every attached unit its own OS thread, named `streamlib-{unit name}` (cut to the 15
/// bytes Linux keeps), which parks while nothing is pending.
///
/// For latency-critical handlers (audio, capture): nothing else ever runs on that thread, and it
/// can be pinned to a core ([`pin_to_core`](Self::pin_to_core)) and scheduled `SCHED_FIFO`
/// ([`realtime_priority`](Self::realtime_priority)). Both are best effort: where the OS refuses
/// (no `CAP_SYS_NICE`, a core outside the allowed set, not Linux), the thread logs a
/// `tracing::warn!` naming the unit and the reason and runs unpinned or at normal priority.
/// [`attach_dedicated`](Self::attach_dedicated) returns a [`DedicatedActivation`] whose
/// [`status`](DedicatedActivation::status) says what took effect.
#[derive(Debug, Default)]
pub struct DedicatedThreadDispatcher {
    pin_core: Option<usize>,
    realtime_priority: Option<i32>,
    /// Every unit's thread, so `shutdown` can stop the ones still attached.
    workers: Mutex<Vec<Weak<DedicatedWorker>>>,
    shut_down: AtomicBool,
}

impl DedicatedThreadDispatcher {
    /// A dispatcher whose threads run unpinned at normal priority.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins every thread it starts to CPU `core` (`sched_setaffinity`, Linux only).
    #[must_use]
    pub fn pin_to_core(mut self, core: usize) -> Self {
        self.pin_core = Some(core);
        self
    }

    /// Schedules every thread it starts `SCHED_FIFO` at `priority` (1–99 on Linux; Linux only,
    /// needs `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` allowance).
    #[must_use]
    pub fn realtime_priority(mut self, priority: i32) -> Self {
        self.realtime_priority = Some(priority);
        self
    }

    /// Like [`attach`](Dispatcher::attach), returning the concrete activation so the caller can
    /// read what the thread's [`status`](DedicatedActivation::status) ended up being.
    ///
    /// Blocks until the new thread has applied its pinning and priority.
    ///
    /// # Errors
    ///
    /// [`DispatchError::ShutDown`] after shutdown; [`DispatchError::ThreadSpawn`] when the
    /// thread could not be started.
    pub fn attach_dedicated(
        &self,
        unit: Arc<dyn WorkUnit>,
    ) -> Result<DedicatedActivation, DispatchError> {
        let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock `shutdown` takes after setting the flag: every thread started
        // here is either refused or stopped there.
        if self.shut_down.load(Ordering::Acquire) {
            return Err(DispatchError::ShutDown { dispatcher: KIND });
        }
        workers.retain(|worker| worker.strong_count() > 0);

        let name = thread_name(unit.name());
        let gated = Arc::new(GatedUnit::new(unit));
        let (status_tx, status_rx) = mpsc::sync_channel(1);
        let thread_gated = Arc::clone(&gated);
        let thread_name = name.clone();
        let (pin_core, priority) = (self.pin_core, self.realtime_priority);
        let handle = thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let status =
                    apply_settings(thread_gated.unit.name(), thread_name, pin_core, priority);
                if status_tx.send(status).is_ok() {
                    serve(&thread_gated);
                }
            })
            .map_err(|source| DispatchError::ThreadSpawn {
                name: name.clone(),
                source,
            })?;
        let Ok(status) = status_rx.recv() else {
            // The thread died before reporting (a panic inside the OS calls or tracing).
            if handle.join().is_err() {
                tracing::error!(thread = %name, "dedicated thread panicked during start-up");
            }
            return Err(DispatchError::ThreadSpawn {
                name,
                source: std::io::Error::other("the thread exited during start-up"),
            });
        };

        let worker = Arc::new(DedicatedWorker {
            thread: handle.thread().clone(),
            gated,
            join: Mutex::new(Some(handle)),
        });
        workers.push(Arc::downgrade(&worker));
        Ok(DedicatedActivation { worker, status })
    }
}

impl Dispatcher for DedicatedThreadDispatcher {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn attach(&self, unit: Arc<dyn WorkUnit>) -> Result<Box<dyn Activation>, DispatchError> {
        Ok(Box::new(self.attach_dedicated(unit)?))
    }

    fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for worker in workers.iter().filter_map(Weak::upgrade) {
            worker.stop();
        }
    }
}

impl Drop for DedicatedThreadDispatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What took effect on a dedicated thread.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DedicatedThreadStatus {
    /// The thread's name, as the OS shows it (`streamlib-` + the unit name, at most 15 bytes).
    pub thread_name: String,
    /// The core the thread is pinned to; `None` when no pinning was asked for or it failed.
    pub pinned_core: Option<usize>,
    /// The `SCHED_FIFO` priority the thread runs at; `None` when none was asked for or the OS
    /// refused (the thread then runs under the default policy).
    pub realtime_priority: Option<i32>,
}

/// The activation [`DedicatedThreadDispatcher::attach_dedicated`] returns. Dropping it detaches
/// the unit and joins its thread.
#[derive(Debug)]
pub struct DedicatedActivation {
    worker: Arc<DedicatedWorker>,
    status: DedicatedThreadStatus,
}

impl DedicatedActivation {
    /// What the thread's pinning and priority requests came to.
    pub fn status(&self) -> &DedicatedThreadStatus {
        &self.status
    }
}

impl Activation for DedicatedActivation {
    fn activate(&self) {
        if self.worker.gated.gate.activate() {
            // No syscall unless the thread is actually parked.
            self.worker.thread.unpark();
        }
    }

    fn detach(&self) {
        self.worker.stop();
    }
}

impl Drop for DedicatedActivation {
    fn drop(&mut self) {
        self.worker.stop();
    }
}

/// One unit's thread, shared by its activation and (weakly) the dispatcher.
struct DedicatedWorker {
    gated: Arc<GatedUnit>,
    thread: Thread,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl DedicatedWorker {
    /// Detaches the unit and joins its thread (unless called from that thread).
    fn stop(&self) {
        self.gated.gate.detach();
        self.thread.unpark();
        // Held while joining, so a concurrent `stop` returns only once the thread is gone.
        let mut join = self.join.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = join.take() {
            if handle.thread().id() == thread::current().id() {
                // Detached from inside its own run: the thread exits once that run returns.
                return;
            }
            if handle.join().is_err() {
                tracing::error!(unit = self.gated.unit.name(), "dedicated thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for DedicatedWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedicatedWorker")
            .field("unit", &self.gated.unit.name())
            .field("detached", &self.gated.gate.is_detached())
            .finish_non_exhaustive()
    }
}

/// The thread's body: run on each activation, park in between.
fn serve(gated: &GatedUnit) {
    loop {
        match gated.gate.begin_run() {
            Begin::Run => {
                gated.run();
                // When activated during the run the unit is queued again and the next
                // `begin_run` picks it up, so the result needs no handling here.
                gated.gate.end_run();
            }
            Begin::Idle => thread::park(),
            Begin::Detached => return,
        }
    }
}

/// `streamlib-{unit}` cut to what Linux keeps, on a character boundary, without NULs (which
/// `std::thread::Builder` rejects).
fn thread_name(unit: &str) -> String {
    let mut name = String::with_capacity(THREAD_NAME_MAX);
    for c in "streamlib-".chars().chain(unit.chars()) {
        let c = if c == '\0' { '_' } else { c };
        if name.len() + c.len_utf8() > THREAD_NAME_MAX {
            break;
        }
        name.push(c);
    }
    name
}

/// Applies pinning and priority to the calling thread; failures fall back with a warning.
fn apply_settings(
    unit: &str,
    thread_name: String,
    pin_core: Option<usize>,
    priority: Option<i32>,
) -> DedicatedThreadStatus {
    let pinned_core = pin_core.and_then(|core| match os::pin_current_thread(core) {
        Ok(()) => Some(core),
        Err(reason) => {
            tracing::warn!(unit, core, %reason, "could not pin dedicated thread; it runs unpinned");
            None
        }
    });
    let realtime_priority = priority.and_then(|priority| match os::set_fifo_priority(priority) {
        Ok(()) => Some(priority),
        Err(reason) => {
            tracing::warn!(
                unit,
                priority,
                %reason,
                "could not give dedicated thread SCHED_FIFO priority; it runs at normal priority"
            );
            None
        }
    });
    DedicatedThreadStatus {
        thread_name,
        pinned_core,
        realtime_priority,
    }
}

#[cfg(target_os = "linux")]
mod os {
    use std::io;

    /// Restricts the calling thread to CPU `core`.
    pub(super) fn pin_current_thread(core: usize) -> Result<(), String> {
        let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
        if core >= max {
            return Err(format!(
                "core {core} is beyond the {max} CPUs a cpu_set_t can name"
            ));
        }
        // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `core < CPU_SETSIZE` was checked above, so the bit lies inside `set`.
        unsafe { libc::CPU_SET(core, &mut set) };
        // SAFETY: pid 0 means the calling thread; `set` is a live cpu_set_t of the size passed.
        let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error().to_string())
        }
    }

    /// Switches the calling thread to `SCHED_FIFO` at `priority`.
    pub(super) fn set_fifo_priority(priority: i32) -> Result<(), String> {
        // SAFETY: plain queries without pointers.
        let (min, max) = unsafe {
            (
                libc::sched_get_priority_min(libc::SCHED_FIFO),
                libc::sched_get_priority_max(libc::SCHED_FIFO),
            )
        };
        if priority < min || priority > max {
            return Err(format!(
                "priority {priority} is outside SCHED_FIFO's {min}..={max}"
            ));
        }
        // SAFETY: sched_param is plain integers; zeroed is valid (musl has extra fields).
        let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
        param.sched_priority = priority;
        // SAFETY: pthread_self() is the calling thread, alive for the call; `param` is a valid
        // sched_param that outlives it.
        let rc =
            unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
        if rc == 0 {
            Ok(())
        } else {
            // pthread functions return the error number instead of setting errno.
            Err(io::Error::from_raw_os_error(rc).to_string())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    pub(super) fn pin_current_thread(_core: usize) -> Result<(), String> {
        Err("core pinning is only implemented on Linux".to_owned())
    }

    pub(super) fn set_fifo_priority(_priority: i32) -> Result<(), String> {
        Err("real-time priority is only implemented on Linux".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_fit_linux_and_char_boundaries() {
        assert_eq!(thread_name("mic"), "streamlib-mic");
        assert_eq!(thread_name("camera-front-left"), "streamlib-camer");
        assert_eq!(thread_name("caméra"), "streamlib-camé");
        assert_eq!(thread_name("ab\u{0}c"), "streamlib-ab_c");
        // 'é' is two bytes: at byte 14 it would end at 16, so it is dropped whole.
        assert_eq!(thread_name("abcdé"), "streamlib-abcd");
    }
}
