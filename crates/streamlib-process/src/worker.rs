//! `Worker`: the child's side — find the descriptors the parent passed, map the pool, take
//! the handshake, then answer ticks.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::channel::{ControlChannel, Received};
use crate::child::WORKER_ENV;
use crate::protocol::{
    Crossing, FrameSlot, Message, PROTOCOL_VERSION, ProtocolError, truncate_str,
};
use crate::{ChildId, PoolView, ProcessError};

/// The largest property list a handshake may carry (each property is one message anyway).
const MAX_PROPERTIES: usize = 256;

/// What the parent asked this worker to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    /// The registered handler name.
    pub handler: String,
    /// Its initial properties, in order.
    pub properties: Vec<(String, String)>,
}

/// A worker process's end of the control channel and its view of the pool.
#[derive(Debug)]
pub struct Worker {
    channel: ControlChannel,
    pool: PoolView,
    id: ChildId,
    handler: String,
}

impl Worker {
    /// Whether this process was started as a worker (the parent set [`WORKER_ENV`]).
    pub fn is_worker() -> bool {
        std::env::var_os(WORKER_ENV).is_some()
    }

    /// Takes the descriptors named in [`WORKER_ENV`], maps the pool and reads the handshake
    /// (handler name and properties). Answer with [`Worker::ready`] once the handler started.
    pub fn connect() -> Result<(Worker, Startup), ProcessError> {
        let value = std::env::var(WORKER_ENV)
            .map_err(|_| ProcessError::NotAWorker(format!("{WORKER_ENV} is not set")))?;
        let (socket, pool, id) = parse_env(&value).ok_or_else(|| {
            ProcessError::NotAWorker(format!(
                "{WORKER_ENV}={value:?} is not `1:<socket>:<pool>:<id>`"
            ))
        })?;
        let socket = take_fd(socket, "control socket")?;
        let pool = take_fd(pool, "pool")?;
        let pool = PoolView::open(pool)?;
        let mut channel = ControlChannel::from_fd(socket);
        let (handler, count) = match channel.receive(true)? {
            Received::Message(Message::Hello {
                version,
                handler,
                properties,
            }) => {
                if version != PROTOCOL_VERSION {
                    return Err(ProtocolError::WrongVersion {
                        got: version,
                        expected: PROTOCOL_VERSION,
                    }
                    .into());
                }
                (handler.to_owned(), usize::from(properties))
            }
            Received::Closed => return Err(ProcessError::ParentGone),
            Received::Malformed(error) => return Err(error.into()),
            Received::Message(other) => {
                return Err(ProcessError::NotAWorker(format!(
                    "first message was `{}`, not `hello`",
                    other.kind()
                )));
            }
            Received::Empty => return Err(ProcessError::ParentGone),
        };
        let mut properties = Vec::with_capacity(count.min(MAX_PROPERTIES));
        for _ in 0..count {
            match channel.receive(true)? {
                Received::Message(Message::SetProperty { name, value }) => {
                    properties.push((name.to_owned(), value.to_owned()));
                }
                Received::Malformed(error) => return Err(error.into()),
                Received::Message(other) => {
                    return Err(ProcessError::NotAWorker(format!(
                        "expected {count} properties, got a `{}` message",
                        other.kind()
                    )));
                }
                Received::Closed | Received::Empty => return Err(ProcessError::ParentGone),
            }
        }
        let worker = Worker {
            channel,
            pool,
            id: ChildId(id),
            handler: handler.clone(),
        };
        Ok((
            worker,
            Startup {
                handler,
                properties,
            },
        ))
    }

    /// Tells the parent the handler started.
    pub fn ready(&mut self) -> Result<(), ProcessError> {
        let pid = std::process::id();
        self.channel.send(&Message::Ready {
            version: PROTOCOL_VERSION,
            handler: &self.handler,
            pid,
        })
    }

    /// The next message from the parent (blocking). A closed channel is
    /// [`ProcessError::ParentGone`]: the worker should exit.
    pub fn receive(&mut self) -> Result<Message<'_>, ProcessError> {
        match self.channel.receive(true)? {
            Received::Message(message) => Ok(message),
            Received::Malformed(error) => Err(error.into()),
            Received::Closed | Received::Empty => Err(ProcessError::ParentGone),
        }
    }

    /// Sends a message to the parent.
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), ProcessError> {
        self.channel.send(message)
    }

    /// Reports a handler error for the current tick (cut to fit one message).
    pub fn send_error(&mut self, message: &str) -> Result<(), ProcessError> {
        self.channel.send(&Message::Error {
            message: truncate_str(message, 900),
        })
    }

    /// The bytes of a frame the parent handed over (checked against the pool's header), to
    /// write. Not while a pool over [`storage`](Self::storage) may hold the slot: write
    /// through that pool's claim instead.
    pub fn frame_mut(&mut self, frame: &FrameSlot) -> Result<&mut [u8], ProcessError> {
        self.pool
            .slot_mut(self.id, frame.slot, frame.generation, frame.len)
    }

    /// The bytes of a frame the parent handed over, to read (checked as for
    /// [`frame_mut`](Self::frame_mut)).
    pub fn frame(&self, frame: &FrameSlot) -> Result<&[u8], ProcessError> {
        self.bytes(&Crossing::Video(*frame))
    }

    /// The bytes of a frame or audio buffer the parent handed over, to read.
    pub fn bytes(&self, slot: &Crossing) -> Result<&[u8], ProcessError> {
        self.pool
            .slot(self.id, slot.slot(), slot.generation(), slot.len())
    }

    /// Checks that the parent lent `slot`'s slot to this worker, as [`check_frame`](Self::check_frame).
    pub fn check(&self, slot: &Crossing) -> Result<(), ProcessError> {
        self.pool
            .check(self.id, slot.slot(), slot.generation(), slot.len())
    }

    /// Checks that the parent lent `frame`'s slot to this worker (generation and length
    /// included), without touching its bytes.
    pub fn check_frame(&self, frame: &FrameSlot) -> Result<(), ProcessError> {
        self.pool
            .check(self.id, frame.slot, frame.generation, frame.len)
    }

    /// The pool's slots as buffer storage (see [`PoolView::storage`]).
    pub fn storage(&self) -> std::sync::Arc<dyn streamlib_buffers::PoolStorage<u8>> {
        self.pool.storage()
    }

    /// The pool slot starting at `ptr`, if any (is this buffer a slot the parent lent?).
    pub fn slot_of(&self, ptr: *const u8) -> Option<u32> {
        self.pool.slot_of(ptr)
    }

    /// This worker's id in the pool.
    pub fn id(&self) -> ChildId {
        self.id
    }

    /// The pool view (for tests that misbehave on purpose).
    #[doc(hidden)]
    pub fn pool_mut(&mut self) -> &mut PoolView {
        &mut self.pool
    }

    /// The raw channel (for tests that write garbage on purpose).
    #[doc(hidden)]
    pub fn channel_mut(&mut self) -> &mut ControlChannel {
        &mut self.channel
    }
}

fn parse_env(value: &str) -> Option<(RawFd, RawFd, u16)> {
    let mut parts = value.split(':');
    if parts.next()? != "1" {
        return None;
    }
    let socket = parts.next()?.parse().ok()?;
    let pool = parts.next()?.parse().ok()?;
    let id = parts.next()?.parse().ok()?;
    (parts.next().is_none() && socket != pool).then_some((socket, pool, id))
}

/// Takes ownership of an inherited descriptor after checking it is open, and marks it
/// close-on-exec again so that the worker's own children do not inherit it.
fn take_fd(fd: RawFd, what: &str) -> Result<OwnedFd, ProcessError> {
    // SAFETY: fcntl on an arbitrary number is harmless; -1/EBADF means it is not open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if fd < 0 || flags < 0 {
        return Err(ProcessError::NotAWorker(format!(
            "the {what} descriptor {fd} is not open"
        )));
    }
    // SAFETY: as above, on a descriptor that is open.
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    // SAFETY: the parent passed this descriptor for us alone; nothing else in this process
    // owns it (the environment variable is read once, by this call's caller).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::parse_env;

    #[test]
    fn the_environment_is_parsed_strictly() {
        assert_eq!(parse_env("1:5:6:0"), Some((5, 6, 0)));
        for bad in [
            "",
            "2:5:6:0",
            "1:5:6",
            "1:5:6:0:9",
            "1:x:6:0",
            "1:5:6:70000",
            "1:5:5:0",
        ] {
            assert_eq!(parse_env(bad), None, "{bad}");
        }
    }
}
