//! The control channel: one end of a `SOCK_SEQPACKET` socket pair, with fixed send and
//! receive buffers so that a message costs one system call and no allocation.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::ProcessError;
use crate::protocol::{MAX_MESSAGE, Message, ProtocolError, decode};

/// What a receive found.
#[derive(Debug)]
pub enum Received<'a> {
    /// A well-formed message (its strings borrow the channel's buffer).
    Message(Message<'a>),
    /// Nothing waiting (non-blocking receive only).
    Empty,
    /// The other end closed its socket (it exited, or closed it).
    Closed,
    /// A datagram that is not a message.
    Malformed(ProtocolError),
}

/// One end of a control socket pair.
#[derive(Debug)]
pub struct ControlChannel {
    fd: OwnedFd,
    receive: Box<[u8; MAX_MESSAGE]>,
    send: Box<[u8; MAX_MESSAGE]>,
}

impl ControlChannel {
    /// A connected pair (both close-on-exec): the parent's channel and the raw end for the child.
    pub fn pair() -> Result<(ControlChannel, OwnedFd), ProcessError> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: socketpair writes two descriptors into the array we pass.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(ProcessError::Os {
                call: "socketpair",
                what: "the control channel".to_owned(),
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: both descriptors are fresh and owned by nobody else.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Self::from_fd(ours), theirs))
    }

    /// Wraps a connected `SOCK_SEQPACKET` socket (the child's end, in the child).
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self {
            fd,
            receive: Box::new([0; MAX_MESSAGE]),
            send: Box::new([0; MAX_MESSAGE]),
        }
    }

    /// The socket's descriptor (to poll).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends one message. A closed peer is an `EPIPE` error, never a `SIGPIPE`.
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), ProcessError> {
        let len = message.encode(&mut self.send)?;
        self.send_raw_len(len)
    }

    /// Sends raw bytes as one datagram (for tests of a peer that writes garbage).
    #[doc(hidden)]
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ProcessError> {
        let len = bytes.len().min(MAX_MESSAGE);
        self.send[..len].copy_from_slice(&bytes[..len]);
        self.send_raw_len(len)
    }

    fn send_raw_len(&mut self, len: usize) -> Result<(), ProcessError> {
        loop {
            // SAFETY: the buffer holds `len` initialised bytes; the socket is open.
            let sent = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    self.send.as_ptr().cast(),
                    len,
                    libc::MSG_NOSIGNAL,
                )
            };
            if sent >= 0 {
                return Ok(());
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(ProcessError::Os {
                    call: "send",
                    what: "the control channel".to_owned(),
                    source: error,
                });
            }
        }
    }

    /// Receives one message; `blocking: false` returns [`Received::Empty`] when none waits.
    pub fn receive(&mut self, blocking: bool) -> Result<Received<'_>, ProcessError> {
        let flags = libc::MSG_TRUNC | if blocking { 0 } else { libc::MSG_DONTWAIT };
        let got = loop {
            // SAFETY: the buffer is MAX_MESSAGE writable bytes; MSG_TRUNC makes the kernel
            // return the datagram's real length while writing at most that many.
            let got = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.receive.as_mut_ptr().cast(),
                    MAX_MESSAGE,
                    flags,
                )
            };
            if got >= 0 {
                break got as usize;
            }
            let error = std::io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(Received::Empty),
                Some(libc::ECONNRESET) => return Ok(Received::Closed),
                _ => {
                    return Err(ProcessError::Os {
                        call: "recv",
                        what: "the control channel".to_owned(),
                        source: error,
                    });
                }
            }
        };
        if got == 0 {
            // SEQPACKET: a zero-length read is end of file (we never send empty datagrams).
            return Ok(Received::Closed);
        }
        if got > MAX_MESSAGE {
            return Ok(Received::Malformed(ProtocolError::Oversized {
                len: got,
                max: MAX_MESSAGE,
            }));
        }
        Ok(match decode(&self.receive[..got]) {
            Ok(message) => Received::Message(message),
            Err(error) => Received::Malformed(error),
        })
    }
}

/// What [`wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// The socket has data (or hung up: a read will say which).
    pub(crate) socket: bool,
    /// The socket's peer hung up.
    pub(crate) hangup: bool,
    /// The process behind the pidfd ended.
    pub(crate) exited: bool,
}

/// Waits up to `timeout` for the socket to be readable or the process (pidfd) to end.
pub(crate) fn wait(socket: RawFd, pidfd: Option<RawFd>, timeout: Duration) -> Readiness {
    let mut fds = [
        libc::pollfd {
            fd: socket,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: pidfd.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // Without a pidfd (kernels before 5.3), wake every 10 ms to check `waitpid`.
    let ms = if pidfd.is_some() {
        timeout.as_millis()
    } else {
        timeout.as_millis().min(10)
    };
    let ms = i32::try_from(ms)
        .unwrap_or(i32::MAX)
        .max(if timeout.is_zero() { 0 } else { 1 });
    // SAFETY: `fds` is a valid array of two pollfd; a negative fd is ignored by poll.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n <= 0 {
        return Readiness {
            socket: false,
            hangup: false,
            exited: false,
        };
    }
    Readiness {
        socket: fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
        hangup: fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0,
        exited: fds[1].revents & libc::POLLIN != 0,
    }
}
