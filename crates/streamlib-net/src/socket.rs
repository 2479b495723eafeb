//! UDP sockets: unicast and multicast, IPv4 and IPv6, large buffers, and `sendmmsg` /
//! `recvmmsg` batches over pre-allocated buffers.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::NetError;

/// Datagrams moved per `sendmmsg` / `recvmmsg` call at most.
pub const MAX_BATCH: usize = 64;

/// Largest datagram a receive buffer slot holds (jumbo frames included); longer ones are
/// truncated by the kernel and counted as malformed.
pub const RECV_SLOT: usize = 9216;

/// Socket options shared by senders and receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketConfig {
    /// `SO_SNDBUF` / `SO_RCVBUF` asked for, bytes (the kernel may cap it at
    /// `net.core.wmem_max` / `rmem_max`). Default 8 MiB: a 1080p 10-bit frame is 5.2 MB.
    pub buffer_bytes: usize,
    /// Multicast TTL (IPv4) or hop limit (IPv6) of sent packets. Default 16.
    pub multicast_ttl: u32,
    /// Interface for multicast: an IPv4 address (`IP_MULTICAST_IF`, membership), unspecified
    /// for the default route.
    pub multicast_interface_v4: Ipv4Addr,
    /// Interface index for IPv6 multicast (0: default).
    pub multicast_interface_v6: u32,
    /// Whether sent multicast loops back to local receivers. Default true.
    pub multicast_loop: bool,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            buffer_bytes: 8 << 20,
            multicast_ttl: 16,
            multicast_interface_v4: Ipv4Addr::UNSPECIFIED,
            multicast_interface_v6: 0,
            multicast_loop: true,
        }
    }
}

fn socket_err(addr: SocketAddr, op: &'static str) -> impl FnOnce(io::Error) -> NetError {
    move |source| NetError::Socket { addr, op, source }
}

fn new_socket(addr: SocketAddr) -> Result<Socket, NetError> {
    Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(socket_err(addr, "socket"))
}

/// A socket that sends to one destination (unicast or multicast), connected to it.
pub fn sender_socket(
    destination: SocketAddr,
    bind: Option<SocketAddr>,
    config: &SocketConfig,
) -> Result<UdpSocket, NetError> {
    let socket = new_socket(destination)?;
    // Best effort: the kernel caps the size; a smaller buffer only means earlier drops.
    let _ = socket.set_send_buffer_size(config.buffer_bytes);
    if destination.ip().is_multicast() {
        match destination.ip() {
            IpAddr::V4(_) => {
                socket
                    .set_multicast_ttl_v4(config.multicast_ttl)
                    .map_err(socket_err(destination, "IP_MULTICAST_TTL"))?;
                socket
                    .set_multicast_loop_v4(config.multicast_loop)
                    .map_err(socket_err(destination, "IP_MULTICAST_LOOP"))?;
                if !config.multicast_interface_v4.is_unspecified() {
                    socket
                        .set_multicast_if_v4(&config.multicast_interface_v4)
                        .map_err(socket_err(destination, "IP_MULTICAST_IF"))?;
                }
            }
            IpAddr::V6(_) => {
                socket
                    .set_multicast_hops_v6(config.multicast_ttl)
                    .map_err(socket_err(destination, "IPV6_MULTICAST_HOPS"))?;
                socket
                    .set_multicast_loop_v6(config.multicast_loop)
                    .map_err(socket_err(destination, "IPV6_MULTICAST_LOOP"))?;
                if config.multicast_interface_v6 != 0 {
                    socket
                        .set_multicast_if_v6(config.multicast_interface_v6)
                        .map_err(socket_err(destination, "IPV6_MULTICAST_IF"))?;
                }
            }
        }
    }
    if let Some(local) = bind {
        socket
            .bind(&local.into())
            .map_err(|source| NetError::Bind {
                addr: local,
                source,
            })?;
    }
    socket
        .connect(&destination.into())
        .map_err(socket_err(destination, "connect"))?;
    Ok(socket.into())
}

/// A socket bound to `bind` (its port; its address, or the group when `group` is set), that
/// has joined `group` if one is given, with a read timeout of `timeout` so a receive thread
/// can notice it should stop.
pub fn receiver_socket(
    bind: SocketAddr,
    group: Option<IpAddr>,
    config: &SocketConfig,
    timeout: Duration,
) -> Result<UdpSocket, NetError> {
    let socket = new_socket(bind)?;
    let _ = socket.set_recv_buffer_size(config.buffer_bytes);
    socket
        .set_reuse_address(true)
        .map_err(socket_err(bind, "SO_REUSEADDR"))?;
    if bind.is_ipv6() {
        let _ = socket.set_only_v6(true);
    }
    // Bound to the group, Linux delivers only that group's datagrams to the socket.
    let local = match group {
        Some(g) if bind.ip().is_unspecified() => SocketAddr::new(g, bind.port()),
        _ => bind,
    };
    socket
        .bind(&local.into())
        .map_err(|source| NetError::Bind {
            addr: local,
            source,
        })?;
    match group {
        Some(IpAddr::V4(g)) => socket
            .join_multicast_v4(&g, &config.multicast_interface_v4)
            .map_err(|source| NetError::Multicast {
                group: IpAddr::V4(g),
                interface: config.multicast_interface_v4.to_string(),
                source,
            })?,
        Some(IpAddr::V6(g)) => socket
            .join_multicast_v6(&g, config.multicast_interface_v6)
            .map_err(|source| NetError::Multicast {
                group: IpAddr::V6(g),
                interface: format!("index {}", config.multicast_interface_v6),
                source,
            })?,
        None => {}
    }
    socket
        .set_read_timeout(Some(timeout))
        .map_err(socket_err(local, "SO_RCVTIMEO"))?;
    Ok(socket.into())
}

/// Up to [`MAX_BATCH`] outgoing datagrams in one pre-allocated buffer.
#[derive(Debug)]
pub struct SendBatch {
    data: Vec<u8>,
    slot: usize,
    lens: [usize; MAX_BATCH],
    count: usize,
}

impl SendBatch {
    /// Room for [`MAX_BATCH`] datagrams of up to `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self {
            data: vec![0; max_len * MAX_BATCH],
            slot: max_len,
            lens: [0; MAX_BATCH],
            count: 0,
        }
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether no more fit.
    pub fn is_full(&self) -> bool {
        self.count == MAX_BATCH
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.lens[..self.count].iter().sum()
    }

    /// Empties the batch.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Lets `write` fill the next slot and queues what it wrote (`None`: nothing queued).
    pub fn push_with(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        if self.is_full() {
            return false;
        }
        let start = self.count * self.slot;
        match write(&mut self.data[start..start + self.slot]) {
            Some(len) => {
                self.lens[self.count] = len.min(self.slot);
                self.count += 1;
                true
            }
            None => false,
        }
    }

    /// Sends every queued datagram on the connected `socket` with `sendmmsg` (retrying the
    /// rest after a partial send); returns how many were sent before an error, and the error.
    pub fn send(&mut self, socket: &UdpSocket) -> (usize, Option<io::Error>) {
        // SAFETY: an all-zero iovec / mmsghdr is valid (null pointers, zero lengths).
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..self.count {
            iov[i].iov_base = self.data[i * self.slot..].as_mut_ptr().cast();
            iov[i].iov_len = self.lens[i];
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < self.count {
            let remaining = (self.count - sent) as libc::c_uint;
            // SAFETY: `msgs[sent..count]` point at iovecs that point into `self.data`, all
            // alive and unaliased for the call; the socket is connected so no address is
            // needed; the kernel writes only `msg_len` fields.
            let n = unsafe {
                libc::sendmmsg(socket.as_raw_fd(), msgs[sent..].as_mut_ptr(), remaining, 0)
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.count = 0;
                return (sent, Some(err));
            }
            sent += n as usize;
        }
        self.count = 0;
        (sent, None)
    }
}

/// Pre-allocated buffers for [`MAX_BATCH`] incoming datagrams.
#[derive(Debug)]
pub struct RecvBatch {
    data: Vec<u8>,
    lens: [usize; MAX_BATCH],
    truncated: [bool; MAX_BATCH],
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    /// Buffers of [`RECV_SLOT`] bytes each.
    pub fn new() -> Self {
        Self {
            data: vec![0; RECV_SLOT * MAX_BATCH],
            lens: [0; MAX_BATCH],
            truncated: [false; MAX_BATCH],
            count: 0,
        }
    }

    /// Waits (up to the socket's read timeout) for at least one datagram and takes every one
    /// already queued, up to [`MAX_BATCH`], with one `recvmmsg`. Returns how many; 0 on
    /// timeout.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        // SAFETY: an all-zero iovec / mmsghdr is valid (null pointers, zero lengths).
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..MAX_BATCH {
            iov[i].iov_base = self.data[i * RECV_SLOT..].as_mut_ptr().cast();
            iov[i].iov_len = RECV_SLOT;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        self.count = 0;
        // SAFETY: every mmsghdr points at one iovec of RECV_SLOT bytes inside `self.data`,
        // alive and exclusively borrowed for the call; no address or control buffers are
        // given; a null timeout makes the socket's SO_RCVTIMEO apply.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                MAX_BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        let n = n as usize;
        for (i, msg) in msgs.iter().enumerate().take(n) {
            self.lens[i] = (msg.msg_len as usize).min(RECV_SLOT);
            self.truncated[i] = msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        self.count = n;
        Ok(n)
    }

    /// Datagram `i` of the last receive, and whether the kernel truncated it.
    pub fn get(&self, i: usize) -> Option<(&[u8], bool)> {
        if i >= self.count {
            return None;
        }
        let start = i * RECV_SLOT;
        Some((&self.data[start..start + self.lens[i]], self.truncated[i]))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn round_trip(bind: SocketAddr, group: Option<IpAddr>, dest_ip: IpAddr) {
        let cfg = SocketConfig::default();
        let rx = receiver_socket(bind, group, &cfg, Duration::from_millis(200)).unwrap();
        let port = rx.local_addr().unwrap().port();
        let tx = sender_socket(SocketAddr::new(dest_ip, port), None, &cfg).unwrap();
        let mut batch = SendBatch::new(1500);
        for i in 0..10u8 {
            assert!(batch.push_with(|b| {
                b[..3].copy_from_slice(&[i, i, i]);
                Some(3)
            }));
        }
        assert_eq!(batch.send(&tx).0, 10);
        let mut rb = RecvBatch::new();
        let mut got = Vec::new();
        while got.len() < 10 {
            let n = rb.recv(&rx).unwrap();
            assert!(n > 0, "timed out after {} datagrams", got.len());
            for i in 0..n {
                got.push(rb.get(i).unwrap().0.to_vec());
            }
        }
        assert_eq!(got[9], vec![9, 9, 9]);
    }

    #[test]
    fn unicast_v4_and_v6() {
        round_trip(
            "127.0.0.1:0".parse().unwrap(),
            None,
            "127.0.0.1".parse().unwrap(),
        );
        round_trip("[::1]:0".parse().unwrap(), None, "::1".parse().unwrap());
    }
}
