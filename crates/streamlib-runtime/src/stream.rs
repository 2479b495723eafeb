use std::sync::Arc;
use std::time::Duration;

use streamlib_dispatch::Dispatcher;
use streamlib_ports::StreamHandler;

/// How long to wait before a restart, growing after each failure of a crash loop.
///
/// Restarts are counted *in a row*: a stream that stays up for [`reset_after`](Self::reset_after)
/// after a restart is healthy again, so its next failure waits [`initial`](Self::initial) and
/// starts the count from one (Kubernetes' crash-loop back-off works the same way). A handler
/// that fails now and then (a child process that crashes every few seconds) is restarted every
/// time at once; one that fails right after each start backs off and, past `max_restarts`, is
/// left failed. The statistics' `restarts` counts them all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Each further delay is the previous one times this.
    pub factor: f64,
    /// Longest delay.
    pub max: Duration,
    /// Restarts allowed in a row before the stream is left failed; `None` for no cap.
    pub max_restarts: Option<u32>,
    /// Up this long after a restart, the stream is healthy again (see above).
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(10),
            factor: 2.0,
            max: Duration::from_secs(5),
            max_restarts: Some(10),
            reset_after: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// The delay before restart number `restart` (1-based).
    pub fn delay(&self, restart: u32) -> Duration {
        let exp = restart.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.factor.max(1.0).powi(exp);
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64()))
    }
}

/// What the runtime does when a handler fails (returns an error or panics).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RestartPolicy {
    /// Leave it failed; the rest of the pipeline keeps running.
    #[default]
    Never,
    /// Restart it (`on_stop`, wait, `on_start`) after a failure.
    OnFailure(Backoff),
    /// Restart it after a failure and also after it ends its own stream.
    Always(Backoff),
}

impl RestartPolicy {
    pub(crate) fn backoff(&self) -> Option<&Backoff> {
        match self {
            RestartPolicy::Never => None,
            RestartPolicy::OnFailure(b) | RestartPolicy::Always(b) => Some(b),
        }
    }
}

/// A handler plus how to run it: dispatcher and policies.
pub struct Stream {
    pub(crate) id: String,
    pub(crate) handler: Box<dyn StreamHandler>,
    pub(crate) dispatcher: Option<Arc<dyn Dispatcher>>,
    pub(crate) restart_policy: RestartPolicy,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) concurrency_limit: usize,
}

impl Stream {
    /// Wraps `handler` under `id` (unique in the runtime; used in port names like `id.video`).
    pub fn new(id: impl Into<String>, handler: impl StreamHandler) -> Self {
        Self::boxed(id, Box::new(handler))
    }

    /// Wraps an already boxed handler.
    pub fn boxed(id: impl Into<String>, handler: Box<dyn StreamHandler>) -> Self {
        Self {
            id: id.into(),
            handler,
            dispatcher: None,
            restart_policy: RestartPolicy::Never,
            time_limit: None,
            concurrency_limit: 1,
        }
    }

    /// Runs the handler on `dispatcher` instead of the runtime's default thread pool.
    pub fn dispatcher(mut self, dispatcher: Arc<dyn Dispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Sets the restart policy.
    pub fn restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.restart_policy = policy;
        self
    }

    /// A deadline for each `process` call; overruns are counted (not interrupted).
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// How many threads the handler may use for data-parallel work within one `process`
    /// call (handlers read it from `ProcessContext::concurrency_limit`). One `process` call per
    /// handler runs at a time regardless, since handlers take `&mut self`.
    pub fn concurrency_limit(mut self, threads: usize) -> Self {
        self.concurrency_limit = threads.max(1);
        self
    }

    /// The stream's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("handler", &self.handler.type_name())
            .field("dispatcher", &self.dispatcher.as_ref().map(|d| d.kind()))
            .field("restart_policy", &self.restart_policy)
            .field("time_limit", &self.time_limit)
            .field("concurrency_limit", &self.concurrency_limit)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(10),
            factor: 2.0,
            max: Duration::from_millis(50),
            max_restarts: None,
            reset_after: Duration::from_secs(1),
        };
        assert_eq!(b.delay(1), Duration::from_millis(10));
        assert_eq!(b.delay(2), Duration::from_millis(20));
        assert_eq!(b.delay(3), Duration::from_millis(40));
        assert_eq!(b.delay(4), Duration::from_millis(50));
    }
}
