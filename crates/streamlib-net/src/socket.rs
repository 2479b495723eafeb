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

/// Binds `socket` to `local`; a failure names the address.
fn bind_to(socket: &Socket, local: SocketAddr) -> Result<(), NetError> {
    socket.bind(&local.into()).map_err(|source| NetError::Bind {
        addr: local,
        source,
    })
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
        // Each option's failure names the option.
        let set = |op, result: io::Result<()>| result.map_err(socket_err(destination, op));
        let (ttl, looped) = (config.multicast_ttl, config.multicast_loop);
        match destination.ip() {
            IpAddr::V4(_) => {
                set("IP_MULTICAST_TTL", socket.set_multicast_ttl_v4(ttl))?;
                set("IP_MULTICAST_LOOP", socket.set_multicast_loop_v4(looped))?;
                let interface = config.multicast_interface_v4;
                if !interface.is_unspecified() {
                    set("IP_MULTICAST_IF", socket.set_multicast_if_v4(&interface))?;
                }
            }
            IpAddr::V6(_) => {
                set("IPV6_MULTICAST_HOPS", socket.set_multicast_hops_v6(ttl))?;
                set("IPV6_MULTICAST_LOOP", socket.set_multicast_loop_v6(looped))?;
                match config.multicast_interface_v6 {
                    0 => {}
                    index => set("IPV6_MULTICAST_IF", socket.set_multicast_if_v6(index))?,
                }
            }
        }
    }
    if let Some(local) = bind {
        bind_to(&socket, local)?;
    }
    socket
        .connect(&destination.into())
        .map_err(socket_err(destination, "connect"))?;
    Ok(socket.into())
}

/// Whether `ip` is a unicast address of this host (one a socket can bind to): a receiver
/// bound to it takes only datagrams sent to it, not those sent to the host's other addresses.
///
/// Read from the interface list (`getifaddrs`), not by binding a socket: this runs while a
/// pipeline is validated, which must not touch the network. As for `bind`, an address in a
/// loopback interface's prefix (all of 127.0.0.0/8) counts, and an IPv6 link-local address
/// (which needs a scope to bind) does not; an IPv4-mapped IPv6 address is its IPv4 one.
pub(crate) fn is_local(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    let link_local_v6 = matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
    if ip.is_multicast() || ip.is_unspecified() || link_local_v6 {
        return false;
    }
    interface_addresses()
        .inspect_err(|err| tracing::debug!(%err, "getifaddrs failed; treating {ip} as remote"))
        .is_ok_and(|addrs| addrs.iter().any(|a| a.covers(ip)))
}

/// Where a receiver of a stream sent to `destination` binds, and the multicast group it
/// joins: the destination's port on its unicast address when that is this host's, else on
/// the unspecified address of its family (the socket binds to a joined group itself).
pub(crate) fn receive_binding(destination: SocketAddr) -> (SocketAddr, Option<IpAddr>) {
    let ip = destination.ip();
    let any = if ip.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    let bind = if is_local(ip) { ip } else { any };
    (
        SocketAddr::new(bind, destination.port()),
        ip.is_multicast().then_some(ip),
    )
}

/// One address of an interface, from `getifaddrs`.
#[derive(Clone, Copy, Debug)]
struct InterfaceAddress {
    addr: IpAddr,
    netmask: Option<IpAddr>,
    loopback: bool,
}

impl InterfaceAddress {
    /// Whether binding `ip` would work because of this address: it is the address, or lies
    /// in a loopback interface's prefix (the kernel makes the whole prefix local there).
    fn covers(&self, ip: IpAddr) -> bool {
        if self.addr == ip {
            return true;
        }
        match (self.loopback, self.addr, self.netmask, ip) {
            (true, IpAddr::V4(addr), Some(IpAddr::V4(mask)), IpAddr::V4(ip)) => {
                let mask = u32::from(mask);
                u32::from(addr) & mask == u32::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The IP addresses of this host's interfaces (`getifaddrs`: reads the kernel's list over
/// netlink, binds nothing).
fn interface_addresses() -> io::Result<Vec<InterfaceAddress>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs stores the head of a list it allocated in `list`; freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addrs = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { std::ptr::read(entry) };
        entry = ifa.ifa_next;
        // SAFETY: the pointers come from the same live node (or are null).
        let (addr, netmask) = unsafe { (ip_of(ifa.ifa_addr), ip_of(ifa.ifa_netmask)) };
        if let Some(addr) = addr {
            addrs.push(InterfaceAddress {
                addr,
                netmask,
                loopback: ifa.ifa_flags & libc::IFF_LOOPBACK as libc::c_uint != 0,
            });
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once; nothing read from it borrows it.
    unsafe { libc::freeifaddrs(list) };
    Ok(addrs)
}

/// The IP address in a `sockaddr` of `getifaddrs`, `None` for null or another family.
///
/// # Safety
/// `sa` is null or points to a live sockaddr whose `sa_family` gives its full type.
unsafe fn ip_of(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: `sa` is non-null and live (the caller's promise).
    let family = libc::c_int::from(unsafe { std::ptr::read_unaligned(sa) }.sa_family);
    match family {
        libc::AF_INET => {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let sin = unsafe { std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in>()) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 address is a sockaddr_in6.
            let sin6 = unsafe { std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in6>()) };
            Some(IpAddr::V6(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
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
    source_receiver_socket(bind, group, None, config, timeout)
}

/// [`receiver_socket`] that, for an IPv4 `group` and an IPv4 `source`, joins the group
/// source-specifically (`IP_ADD_SOURCE_MEMBERSHIP`, IGMPv3): the kernel then delivers only
/// that sender's datagrams. Other combinations join the whole group; the receivers still drop
/// datagrams from any other address (see [`RecvBatch::source`]).
pub fn source_receiver_socket(
    bind: SocketAddr,
    group: Option<IpAddr>,
    source: Option<IpAddr>,
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
    bind_to(&socket, local)?;
    match (group, source) {
        (Some(IpAddr::V4(g)), Some(IpAddr::V4(src))) => socket
            .join_ssm_v4(&src, &g, &config.multicast_interface_v4)
            .map_err(|source| NetError::Multicast {
                group: IpAddr::V4(g),
                interface: format!("{} (source {src})", config.multicast_interface_v4),
                source,
            })?,
        (Some(IpAddr::V4(g)), _) => socket
            .join_multicast_v4(&g, &config.multicast_interface_v4)
            .map_err(|source| NetError::Multicast {
                group: IpAddr::V4(g),
                interface: config.multicast_interface_v4.to_string(),
                source,
            })?,
        (Some(IpAddr::V6(g)), _) => socket
            .join_multicast_v6(&g, config.multicast_interface_v6)
            .map_err(|source| NetError::Multicast {
                group: IpAddr::V6(g),
                interface: format!("index {}", config.multicast_interface_v6),
                source,
            })?,
        (None, _) => {}
    }
    socket
        .set_read_timeout(Some(timeout))
        .map_err(socket_err(local, "SO_RCVTIMEO"))?;
    Ok(socket.into())
}

/// Largest UDP payload one GSO message may carry before the kernel cuts it (the IPv4 limit,
/// also used for IPv6).
const GSO_MAX_BYTES: usize = 65_507;

/// Room for one `UDP_SEGMENT` control message (a `u16`), 8-byte aligned.
type CmsgSpace = [u64; 4];

/// Up to [`MAX_BATCH`] outgoing datagrams in one pre-allocated buffer, sent with one
/// `sendmmsg`, and with UDP generic segmentation offload (GSO) where the kernel has it.
///
/// With GSO ([`SendBatch::with_gso`]) every run of consecutive datagrams of one length (and
/// at most one shorter datagram ending it) goes down the stack as one message that the kernel
/// (or the NIC) cuts into those datagrams: one trip through the IP stack per run rather than
/// per datagram. The datagrams on the wire are the same. Senders that want long runs write
/// datagrams of one length (the packetizer's uniform mode pads them with RTP padding). If
/// the kernel refuses GSO, the batch is resent without it and GSO stays off.
#[derive(Debug)]
pub struct SendBatch {
    data: Vec<u8>,
    slot: usize,
    lens: [usize; MAX_BATCH],
    count: usize,
    gso: bool,
    /// Messages sent with more than one segment.
    gso_messages: u64,
}

impl SendBatch {
    /// Room for [`MAX_BATCH`] datagrams of up to `max_len` bytes, one `sendmmsg` message each.
    pub fn new(max_len: usize) -> Self {
        Self {
            data: vec![0; max_len * MAX_BATCH],
            slot: max_len,
            lens: [0; MAX_BATCH],
            count: 0,
            gso: false,
            gso_messages: 0,
        }
    }

    /// As [`SendBatch::new`], with UDP GSO (`UDP_SEGMENT`, Linux 4.18 and later) for runs of
    /// equal-length datagrams; elsewhere the same as `new`.
    pub fn with_gso(max_len: usize) -> Self {
        Self {
            gso: cfg!(target_os = "linux"),
            ..Self::new(max_len)
        }
    }

    /// Whether sends still use GSO (false after the kernel refused it once).
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Messages that carried more than one datagram through GSO, since creation.
    pub fn gso_messages(&self) -> u64 {
        self.gso_messages
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

    /// How many datagrams from `first` go in one GSO message: a run of one length `L` (at
    /// most `GSO_MAX_BYTES` in all), and one shorter datagram after it if there is one.
    fn gso_run(&self, first: usize) -> usize {
        let len = self.lens[first];
        let mut end = first + 1;
        let mut total = len;
        while end < self.count && total + self.lens[end] <= GSO_MAX_BYTES {
            let next = self.lens[end];
            if next > len || next == 0 {
                break;
            }
            total += next;
            end += 1;
            if next < len {
                break;
            }
        }
        end - first
    }

    /// Sends every queued datagram on the connected `socket` with `sendmmsg` (retrying the
    /// rest after a partial send); returns how many datagrams were sent before an error, and
    /// the error.
    pub fn send(&mut self, socket: &UdpSocket) -> (usize, Option<io::Error>) {
        if self.gso {
            match self.send_messages(socket, true) {
                // The kernel (or the route's device) refuses UDP_SEGMENT: never again.
                (0, Some(err)) if gso_refused(&err) => {
                    tracing::debug!(%err, "UDP GSO refused; sending datagrams one by one");
                    self.gso = false;
                }
                result => {
                    self.count = 0;
                    return result;
                }
            }
        }
        let result = self.send_messages(socket, false);
        self.count = 0;
        result
    }

    fn send_messages(&mut self, socket: &UdpSocket, gso: bool) -> (usize, Option<io::Error>) {
        // SAFETY: an all-zero iovec / mmsghdr is valid (null pointers, zero lengths).
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut control = [CmsgSpace::default(); MAX_BATCH];
        // Datagrams carried by each message.
        let mut carried = [0usize; MAX_BATCH];
        for (i, (v, &len)) in iov.iter_mut().zip(&self.lens[..self.count]).enumerate() {
            v.iov_base = self.data[i * self.slot..].as_mut_ptr().cast();
            v.iov_len = len;
        }
        let mut messages = 0;
        let mut first = 0;
        while first < self.count {
            let run = if gso { self.gso_run(first) } else { 1 };
            let hdr = &mut msgs[messages].msg_hdr;
            hdr.msg_iov = &mut iov[first];
            hdr.msg_iovlen = run as _;
            if run > 1 {
                let segment = u16::try_from(self.lens[first]).unwrap_or(u16::MAX);
                write_segment_cmsg(hdr, &mut control[messages], segment);
                self.gso_messages += 1;
            }
            carried[messages] = run;
            messages += 1;
            first += run;
        }
        let mut sent_msgs = 0;
        let mut sent = 0;
        while sent_msgs < messages {
            let remaining = (messages - sent_msgs) as libc::c_uint;
            // SAFETY: `msgs[sent_msgs..messages]` point at iovecs into `self.data` and at
            // control buffers in `control`, all alive and unaliased for the call; the socket
            // is connected so no address is needed; the kernel writes only `msg_len` fields.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    msgs[sent_msgs..].as_mut_ptr(),
                    remaining,
                    0,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return (sent, Some(err));
            }
            let n = n as usize;
            sent += carried[sent_msgs..sent_msgs + n].iter().sum::<usize>();
            sent_msgs += n;
        }
        (sent, None)
    }
}

/// Fills `control` with one `UDP_SEGMENT` control message of `segment` bytes and points
/// `hdr` at it.
fn write_segment_cmsg(hdr: &mut libc::msghdr, control: &mut CmsgSpace, segment: u16) {
    hdr.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    hdr.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
    // SAFETY: `control` is 8-byte aligned and at least CMSG_SPACE(2) bytes (checked by the
    // `cmsg_space_fits` test), so the first header and its data lie inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
    }
}

/// Whether `err` from a GSO send means GSO is unavailable (old kernel, a device or route that
/// cannot segment), not that the network failed.
fn gso_refused(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::ENOPROTOOPT | libc::EIO | libc::EOPNOTSUPP)
    )
}

/// Turns on UDP generic receive offload (`UDP_GRO`, Linux 5.0 and later) on `socket`: the
/// kernel may then hand over several datagrams of one sender as one buffer, which only a
/// [`RecvBatch::with_gro`] splits correctly. Returns whether the kernel accepted it.
pub fn enable_gro(socket: &UdpSocket) -> bool {
    #[cfg(target_os = "linux")]
    {
        let one: libc::c_int = 1;
        // SAFETY: UDP_GRO takes one int, passed by pointer with its size; the fd is open.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_GRO,
                std::ptr::addr_of!(one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        false
    }
}

/// Largest buffer a GRO receive fills (a coalesced run of datagrams).
const GRO_SLOT: usize = 65_536;

/// Pre-allocated buffers for [`MAX_BATCH`] incoming datagrams, or with GRO for
/// [`MAX_BATCH`] coalesced buffers of up to 64 KiB each, split back into their datagrams.
#[derive(Debug)]
pub struct RecvBatch {
    data: Vec<u8>,
    slot: usize,
    gro: bool,
    control: Vec<CmsgSpace>,
    /// The sender's address of each buffer of the last receive.
    names: Vec<libc::sockaddr_storage>,
    /// Per datagram of the last receive: start in `data`, length, whether truncated, and the
    /// buffer it came in (for its sender's address).
    datagrams: Vec<(usize, usize, bool, usize)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    /// Buffers of [`RECV_SLOT`] bytes each, for a socket without GRO.
    pub fn new() -> Self {
        Self::with_slot(RECV_SLOT, false)
    }

    /// Buffers of 64 KiB each, for a socket on which [`enable_gro`] succeeded: a buffer the
    /// kernel coalesced is split at the segment size it reports (4 MiB in all).
    pub fn with_gro() -> Self {
        Self::with_slot(GRO_SLOT, true)
    }

    fn with_slot(slot: usize, gro: bool) -> Self {
        // Linux coalesces at most 64 datagrams into one GRO buffer (UDP_GRO_CNT_MAX).
        let per_slot = if gro { 64 } else { 1 };
        Self {
            data: vec![0; slot * MAX_BATCH],
            slot,
            gro,
            control: vec![CmsgSpace::default(); if gro { MAX_BATCH } else { 0 }],
            // SAFETY: an all-zero sockaddr_storage is valid (family AF_UNSPEC).
            names: vec![unsafe { std::mem::zeroed() }; MAX_BATCH],
            datagrams: Vec::with_capacity(MAX_BATCH * per_slot),
        }
    }

    /// Waits (up to the socket's read timeout) for at least one datagram and takes every one
    /// already queued, up to [`MAX_BATCH`] buffers, with one `recvmmsg`. Returns how many
    /// datagrams; 0 on timeout.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        // SAFETY: an all-zero iovec / mmsghdr is valid (null pointers, zero lengths).
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..MAX_BATCH {
            iov[i].iov_base = self.data[i * self.slot..].as_mut_ptr().cast();
            iov[i].iov_len = self.slot;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&raw mut self.names[i]).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as _;
            if let Some(control) = self.control.get_mut(i) {
                msgs[i].msg_hdr.msg_control = control.as_mut_ptr().cast();
                msgs[i].msg_hdr.msg_controllen = size_of::<CmsgSpace>() as _;
            }
        }
        self.datagrams.clear();
        // SAFETY: every mmsghdr points at one iovec of `slot` bytes inside `self.data`, at a
        // sockaddr_storage of its own in `self.names` and, with GRO, at a control buffer of
        // its own, all alive and exclusively borrowed for
        // the call; a null timeout makes the socket's SO_RCVTIMEO apply.
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
        for (i, msg) in msgs.iter().enumerate().take(n as usize) {
            let start = i * self.slot;
            let len = (msg.msg_len as usize).min(self.slot);
            let truncated = msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let segment = if self.gro {
                gro_segment(&msg.msg_hdr).unwrap_or(len)
            } else {
                len
            };
            if segment == 0 || segment >= len {
                self.datagrams.push((start, len, truncated, i));
                continue;
            }
            let mut at = 0;
            while at < len {
                let piece = segment.min(len - at);
                self.datagrams.push((start + at, piece, truncated, i));
                at += piece;
            }
        }
        Ok(self.datagrams.len())
    }

    /// Datagram `i` of the last receive, and whether the kernel truncated it.
    pub fn get(&self, i: usize) -> Option<(&[u8], bool)> {
        let &(start, len, truncated, _) = self.datagrams.get(i)?;
        Some((&self.data[start..start + len], truncated))
    }

    /// The address datagram `i` of the last receive came from (`None` if the kernel gave
    /// none, or not an IP one). An IPv4-mapped IPv6 address is given as IPv4.
    pub fn source(&self, i: usize) -> Option<IpAddr> {
        let &(_, _, _, buffer) = self.datagrams.get(i)?;
        sockaddr_ip(self.names.get(buffer)?)
    }
}

/// The IP address in a `sockaddr_storage` the kernel filled.
fn sockaddr_ip(name: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let v4 = unsafe { &*(&raw const *name).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(&raw const *name).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4))
        }
        _ => None,
    }
}

/// The segment size of a GRO-coalesced receive, from its `UDP_GRO` control message.
#[allow(
    clippy::unnecessary_cast,
    reason = "msg_controllen is not usize on every libc"
)]
fn gro_segment(hdr: &libc::msghdr) -> Option<usize> {
    if hdr.msg_control.is_null() || (hdr.msg_controllen as usize) < size_of::<libc::cmsghdr>() {
        return None;
    }
    // SAFETY: the kernel filled `msg_control` (our buffer) with `msg_controllen` bytes of
    // well-formed control messages; CMSG_FIRSTHDR / CMSG_NXTHDR stay inside that length.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                return usize::try_from(size).ok();
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
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
    fn local_addresses_are_told_from_others() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(
            !is_local("192.0.2.1".parse().unwrap()),
            "TEST-NET-1 is nobody's"
        );
        assert!(!is_local("239.1.1.1".parse().unwrap()));
        assert!(!is_local("0.0.0.0".parse().unwrap()));
        assert!(!is_local("::".parse().unwrap()));
    }

    /// Installs a seccomp filter on the calling thread (only) under which `socket()` of
    /// AF_INET or AF_INET6 fails with EACCES; other sockets (netlink) still work.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))] // socket() is its own syscall
    fn forbid_ip_sockets() {
        let op = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        };
        let arg0 = if cfg!(target_endian = "little") {
            16
        } else {
            20
        };
        let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
        let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
        let ret = libc::BPF_RET | libc::BPF_K;
        let program = [
            op(load, 0, 0, 0), // seccomp_data.nr
            op(jeq, libc::SYS_socket as u32, 0, 4),
            op(load, arg0, 0, 0), // args[0], the domain
            op(jeq, libc::AF_INET as u32, 1, 0),
            op(jeq, libc::AF_INET6 as u32, 0, 1),
            op(ret, libc::SECCOMP_RET_ERRNO | libc::EACCES as u32, 0, 0),
            op(ret, libc::SECCOMP_RET_ALLOW, 0, 0),
        ];
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: plain prctl calls; `prog` points to `program`, both live across the call.
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            assert_eq!(
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog
                ),
                0,
                "seccomp filter refused: {}",
                io::Error::last_os_error()
            );
        }
    }

    /// Validation must not bind sockets: in a thread that cannot create an IP socket at all,
    /// `is_local` still answers right.
    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))] // socket() is its own syscall
    fn is_local_creates_no_ip_socket() {
        let answers = std::thread::spawn(|| {
            forbid_ip_sockets();
            assert!(UdpSocket::bind("127.0.0.1:0").is_err(), "the filter holds");
            (
                is_local("127.0.0.1".parse().unwrap()),
                is_local("192.0.2.1".parse().unwrap()),
            )
        })
        .join()
        .unwrap();
        assert_eq!(answers, (true, false));
    }

    /// `is_local` reads the interface list; it says what a bind would, for every address of
    /// this host and a few that are not (the bind here is the test's, not `is_local`'s).
    #[test]
    fn is_local_agrees_with_bind() {
        let mut ips: Vec<IpAddr> = interface_addresses()
            .unwrap()
            .iter()
            .map(|a| a.addr)
            .collect();
        assert!(ips.contains(&"127.0.0.1".parse().unwrap()), "{ips:?}");
        ips.extend(
            [
                "127.0.0.5",
                "::1",
                "::ffff:127.0.0.1",
                "192.0.2.1",
                "203.0.113.9",
                "2001:db8::1",
            ]
            .map(|ip| ip.parse::<IpAddr>().unwrap()),
        );
        for ip in ips {
            let binds = UdpSocket::bind((ip, 0)).is_ok();
            assert_eq!(is_local(ip), binds, "{ip}: bind says {binds}");
        }
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

    /// Datagrams of `lens` (byte `i` of datagram `k` is `k + i`), sent in one batch through
    /// GSO or not, come back whole and in order, to a receiver with or without GRO.
    fn gso_round_trip(lens: &[usize], gso: bool, gro: bool) -> (u64, bool) {
        let cfg = SocketConfig::default();
        let rx = receiver_socket(
            "127.0.0.1:0".parse().unwrap(),
            None,
            &cfg,
            Duration::from_millis(200),
        )
        .unwrap();
        let mut rb = if gro {
            assert!(enable_gro(&rx), "UDP_GRO refused on loopback");
            RecvBatch::with_gro()
        } else {
            RecvBatch::new()
        };
        let dest = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), rx.local_addr().unwrap().port());
        let tx = sender_socket(dest, None, &cfg).unwrap();
        let mut batch = if gso {
            SendBatch::with_gso(1472)
        } else {
            SendBatch::new(1472)
        };
        let datagram =
            |k: usize, len: usize| -> Vec<u8> { (0..len).map(|i| (k + i) as u8).collect() };
        for (k, &len) in lens.iter().enumerate() {
            assert!(batch.push_with(|b| {
                b[..len].copy_from_slice(&datagram(k, len));
                Some(len)
            }));
        }
        let (sent, err) = batch.send(&tx);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(sent, lens.len());
        let mut got = Vec::new();
        while got.len() < lens.len() {
            let n = rb.recv(&rx).unwrap();
            assert!(n > 0, "timed out after {} datagrams", got.len());
            for i in 0..n {
                let (d, cut) = rb.get(i).unwrap();
                assert!(!cut);
                got.push(d.to_vec());
            }
        }
        for (k, &len) in lens.iter().enumerate() {
            assert_eq!(got[k], datagram(k, len), "datagram {k}");
        }
        (batch.gso_messages(), batch.gso())
    }

    #[test]
    fn gso_runs_arrive_as_the_datagrams_sent() {
        // 40 of one length and a short last one: one GSO message (44 × 1470 would exceed
        // 64 KiB, so 64 splits into two).
        let mut lens = vec![1470; 40];
        lens.push(300);
        for gro in [false, true] {
            // Linux has had UDP_SEGMENT since 4.18; elsewhere the batch falls back.
            let linux = cfg!(target_os = "linux");
            assert_eq!(gso_round_trip(&lens, true, gro), (u64::from(linux), linux));
            assert_eq!(
                gso_round_trip(&[1470; 64], true, gro).0,
                2 * u64::from(linux)
            );
            // Mixed lengths: runs break where the length grows.
            gso_round_trip(&[100, 100, 50, 1470, 1470, 1471, 1471, 7, 1], true, gro);
            // Without GSO nothing is coalesced.
            assert_eq!(gso_round_trip(&lens, false, gro), (0, false));
        }
    }

    #[test]
    fn gso_runs_are_cut_at_length_changes_and_64k() {
        let mut b = SendBatch::with_gso(1500);
        for len in [10, 10, 10, 5, 10, 20, 20, 1500] {
            b.push_with(|_| Some(len));
        }
        assert_eq!(b.gso_run(0), 4); // 10 10 10 and the shorter 5 ending the run
        assert_eq!(b.gso_run(4), 1); // 10 then a longer 20
        assert_eq!(b.gso_run(5), 2);
        assert_eq!(b.gso_run(7), 1);
        let mut b = SendBatch::with_gso(1500);
        for _ in 0..MAX_BATCH {
            b.push_with(|_| Some(1500));
        }
        assert_eq!(b.gso_run(0), GSO_MAX_BYTES / 1500);
    }

    #[test]
    fn cmsg_space_fits() {
        // SAFETY: CMSG_SPACE only computes a size.
        let need = unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) };
        assert!(need as usize <= size_of::<CmsgSpace>());
    }
}
