//! The encoder thread: a [`FileWriter`](super::FileWriter) hands frames and audio buffers to it
//! by reference through a short bounded queue, so converting, encoding and muxing a frame
//! overlaps the pipeline's next tick instead of extending this one. A full queue makes the
//! writer wait (no frame is ever dropped); an encoder error is reported on the writer's next
//! call, and the file is still completed up to that point.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use streamlib_ports::{AudioBuffer, FrameLayout, VideoFrame};

use super::WriterStats;
use super::session::Session;
use crate::FileError;

/// Jobs that may wait: two frames of slack is enough to overlap one tick with encoding, and
/// few enough that a stop finalizes quickly.
const QUEUE: usize = 4;

/// Frames a writer holds past its input queue at once: the queued jobs, the one the encoder
/// thread converts, and the one `process` waits to hand over. Its input declares it so that
/// upstream pools are sized for it ([`InputPort::holding`](streamlib_ports::InputPort::holding)).
pub(super) const FRAMES_HELD: usize = QUEUE + 2;

enum Job {
    Video(VideoFrame, i64),
    Audio(AudioBuffer),
}

/// A session running on its own thread.
pub(super) struct Worker {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Result<(), FileError>>>,
    /// The first error the encoder reported, taken by the next call.
    error: Arc<Mutex<Option<FileError>>>,
    /// Why the encoder stopped accepting work, once it has: every later call fails with it,
    /// so no frame is accepted (and counted) that will never be written.
    failed: Mutex<Option<String>>,
    layout: FrameLayout,
    path: std::path::PathBuf,
}

impl Worker {
    /// Moves `session` to a new thread.
    pub(super) fn spawn(session: Session, stats: WriterStats) -> Result<Self, FileError> {
        let (jobs, queue) = sync_channel(QUEUE);
        let error = Arc::new(Mutex::new(None));
        let layout = session.input_layout();
        let shared = Arc::clone(&error);
        let path = session.path().to_owned();
        let thread = std::thread::Builder::new()
            .name("streamlib-encoder".into())
            .spawn(move || encode(session, &queue, &stats, &shared))
            .map_err(|e| FileError::Encode {
                path: path.clone(),
                reason: format!("cannot start the encoder thread: {e}"),
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
            error,
            failed: Mutex::new(None),
            layout,
            path,
        })
    }

    /// The layout the stream was opened with.
    pub(super) fn layout(&self) -> FrameLayout {
        self.layout
    }

    /// An error the encoder reported since the last call (the original error, once); after
    /// that, an error saying the encoder failed earlier.
    fn take_error(&self) -> Result<(), FileError> {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = self
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            *failed = Some(e.to_string());
            return Err(e);
        }
        match failed.as_ref() {
            Some(reason) => Err(self.stopped(&format!("the encoder failed earlier: {reason}"))),
            None => Ok(()),
        }
    }

    fn stopped(&self, reason: &str) -> FileError {
        FileError::Encode {
            path: self.path.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Marks the encoder as gone (its thread ended without reporting why: it panicked).
    fn disconnected(&self) -> Result<(), FileError> {
        self.take_error()?;
        let reason = "the encoder thread stopped";
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.to_owned());
        Err(self.stopped(reason))
    }

    fn send(&self, job: Job) -> Result<(), FileError> {
        self.take_error()?;
        let Some(jobs) = &self.jobs else {
            return Err(self.stopped("the file is already finalized"));
        };
        match jobs.try_send(job) {
            Ok(()) => Ok(()),
            // Back-pressure: the encoder is the bottleneck; wait for it rather than drop.
            Err(TrySendError::Full(job)) => match jobs.send(job) {
                Ok(()) => Ok(()),
                Err(_) => self.disconnected(),
            },
            Err(TrySendError::Disconnected(_)) => self.disconnected(),
        }
    }

    /// Queues a frame (a reference: no pixel is copied) with its presentation time.
    pub(super) fn video(&self, frame: VideoFrame, pts: i64) -> Result<(), FileError> {
        self.send(Job::Video(frame, pts))
    }

    /// Queues an audio buffer.
    pub(super) fn audio(&self, buffer: AudioBuffer) -> Result<(), FileError> {
        self.send(Job::Audio(buffer))
    }

    /// Encodes what is queued, flushes the encoders, writes the trailer and joins the thread.
    pub(super) fn finish(&mut self) -> Result<(), FileError> {
        self.jobs = None;
        let joined = match self.thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(FileError::Encode {
                    path: self.path.clone(),
                    reason: "the encoder thread panicked".to_owned(),
                })
            }),
            None => Ok(()),
        };
        // An error already returned by an earlier call is not returned again; what finishing
        // adds is the flush and trailer (the join result) and any error not yet reported.
        let pending = match self
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        };
        pending.and(joined)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::error!("{e}");
        }
    }
}

/// The thread's loop: encode until the writer hangs up, then complete the file.
fn encode(
    mut session: Session,
    queue: &Receiver<Job>,
    stats: &WriterStats,
    error: &Mutex<Option<FileError>>,
) -> Result<(), FileError> {
    let mut failed = false;
    while let Ok(job) = queue.recv() {
        if failed {
            continue;
        }
        let result = match job {
            Job::Video(frame, pts) => match frame.cpu_bytes() {
                Some(bytes) => session.write(bytes, pts),
                None => Ok(()),
            },
            Job::Audio(buffer) => session.write_audio(&buffer),
        };
        store_counts(&session, stats);
        if let Err(e) = result {
            failed = true;
            *error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
        }
    }
    let result = session.finish();
    store_counts(&session, stats);
    if result.is_ok() && !failed {
        stats.inner.finalized.store(true, Ordering::Release);
    }
    result
}

fn store_counts(session: &Session, stats: &WriterStats) {
    let inner = &stats.inner;
    inner.packets.store(session.packets(), Ordering::Relaxed);
    let (packets, samples) = session.audio_counts();
    inner.audio_packets.store(packets, Ordering::Relaxed);
    inner.audio_samples.store(samples, Ordering::Relaxed);
    inner
        .audio_unaligned
        .store(session.audio_unaligned(), Ordering::Relaxed);
}
