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

enum Job {
    Video(VideoFrame, i64),
    Audio(AudioBuffer),
}

/// A session running on its own thread.
pub(super) struct Worker {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Result<(), FileError>>>,
    /// The first error the encoder hit, taken by the next call.
    error: Arc<Mutex<Option<FileError>>>,
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
            layout,
            path,
        })
    }

    /// The layout the stream was opened with.
    pub(super) fn layout(&self) -> FrameLayout {
        self.layout
    }

    /// An error the encoder reported since the last call.
    fn take_error(&self) -> Result<(), FileError> {
        match self
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn send(&self, job: Job) -> Result<(), FileError> {
        self.take_error()?;
        let Some(jobs) = &self.jobs else {
            return Ok(());
        };
        match jobs.try_send(job) {
            Ok(()) => Ok(()),
            // Back-pressure: the encoder is the bottleneck; wait for it rather than drop.
            Err(TrySendError::Full(job)) => {
                let _ = jobs.send(job);
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => self.take_error(),
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
        self.take_error().and(joined)
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
}
