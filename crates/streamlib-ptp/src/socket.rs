//! The two UDP sockets of a PTP port, with software timestamps.
//!
//! Receive times come from the kernel (`SO_TIMESTAMPNS`, read from the `recvmsg` control
//! messages); send times of event messages from the kernel's software transmit timestamp
//! (`SO_TIMESTAMPING`, read back from the error queue). When either is missing the time is
//! read in user space next to the system call. Kernel stamps are `CLOCK_REALTIME`; they are
//! mapped onto the monotonic timebase at once.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use crate::PtpError;
use crate::config::{Destination, Interface, Transport};
use crate::error::bind_hint;
use crate::time::{local_monotonic_ns, realtime_to_monotonic, timespec_ns};

/// Which socket a datagram arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channel {
    Event,
    General,
}

/// One received datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Datagram {
    pub len: usize,
    pub from: Option<SocketAddrV4>,
    /// Receive time on the monotonic timebase.
    pub rx_mono: u64,
    /// True when `rx_mono` came from a kernel timestamp.
    pub kernel_stamp: bool,
}

/// When an event message left.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sent {
    pub tx_mono: u64,
    pub kernel_stamp: bool,
}

pub(crate) struct PtpSockets {
    event: Socket,
    general: Socket,
    local_event: SocketAddrV4,
    local_general: SocketAddrV4,
    destination: Destination,
    tx_stamping: bool,
    /// The chosen interface's index: datagrams that arrived on another are dropped (see
    /// [`recv`](Self::recv)).
    interface_index: Option<u32>,
    /// Datagrams dropped because they arrived on another interface.
    foreign_interface: std::sync::atomic::AtomicU64,
}

/// Datagrams of other interfaces [`PtpSockets::recv`] drops per call at most.
pub(crate) const MAX_FOREIGN_DROPS: usize = 64;

fn os_option(
    role: &'static str,
    addr: SocketAddrV4,
    option: String,
    source: io::Error,
) -> PtpError {
    PtpError::SocketOption {
        role,
        addr,
        option,
        source,
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size passed; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Interface index for a name, `None` if there is no such interface.
fn interface_index(name: &str) -> Option<u32> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c_name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The interface PTP runs on, whichever way it was named.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChosenInterface {
    name: String,
    index: u32,
}

/// Finds the interface named, or the one that owns the address given, so that datagrams of
/// the other interfaces are dropped in both cases.
fn resolve_interface(interface: &Interface) -> Result<ChosenInterface, PtpError> {
    let unusable = |reason: String| PtpError::Interface {
        interface: interface.to_string(),
        reason,
    };
    let name = match interface {
        Interface::Name(name) => name.clone(),
        Interface::Address(addr) => interface_with_address(*addr)
            .map_err(|err| unusable(format!("listing the network interfaces failed: {err}")))?
            .ok_or_else(|| {
                unusable("no network interface has this IPv4 address (see `ip -4 addr`)".into())
            })?,
    };
    let index = interface_index(&name).ok_or_else(|| {
        unusable(format!(
            "no such network interface `{name}` (see `ip link`)"
        ))
    })?;
    Ok(ChosenInterface { name, index })
}

/// The name of the interface that has `addr` assigned (`getifaddrs`), `None` if none has.
fn interface_with_address(addr: Ipv4Addr) -> io::Result<Option<String>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs stores the head of a list it allocated in `list`; freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { std::ptr::read(entry) };
        entry = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a non-null `ifa_addr` points to a sockaddr whose family gives its type.
        let family = unsafe { std::ptr::read_unaligned(ifa.ifa_addr) }.sa_family;
        if family != libc::AF_INET as libc::sa_family_t {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in.
        let sin = unsafe { std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in>()) };
        if Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)) == addr {
            // SAFETY: `ifa_name` is a NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
            found = Some(name.to_string_lossy().into_owned());
            break;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once; no pointer into it outlives this.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

impl PtpSockets {
    pub(crate) fn open(transport: &Transport) -> Result<Self, PtpError> {
        let chosen = match &transport.destination {
            Destination::Multicast { interface, .. } => Some(resolve_interface(interface)?),
            Destination::Unicast { .. } => None,
        };
        let interface_index = chosen.as_ref().map(|c| c.index);
        let (event, local_event) =
            open_one("event", transport, transport.event_port, chosen.as_ref())?;
        let (general, local_general) = open_one(
            "general",
            transport,
            transport.general_port,
            chosen.as_ref(),
        )?;

        let fd = event.as_raw_fd();
        setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &1 as &libc::c_int,
        )
        .map_err(|e| os_option("event", local_event, "SO_TIMESTAMPNS".into(), e))?;
        let tx_flags = (libc::SOF_TIMESTAMPING_TX_SOFTWARE
            | libc::SOF_TIMESTAMPING_SOFTWARE
            | libc::SOF_TIMESTAMPING_OPT_TSONLY) as libc::c_int;
        // Optional: without it send times are read in user space.
        let tx_stamping = setsockopt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPING, &tx_flags)
            .inspect_err(|err| {
                tracing::debug!(%err, "no software transmit timestamps; using user-space send times");
            })
            .is_ok();
        Ok(Self {
            event,
            general,
            local_event,
            local_general,
            destination: transport.destination.clone(),
            tx_stamping,
            interface_index,
            foreign_interface: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The bound local addresses (event, general).
    pub(crate) fn local_addrs(&self) -> (SocketAddrV4, SocketAddrV4) {
        (self.local_event, self.local_general)
    }

    /// Where messages for `channel` go by default (the group, or the unicast peer).
    pub(crate) fn destination(&self, channel: Channel) -> SocketAddrV4 {
        match &self.destination {
            Destination::Multicast { group, .. } => {
                let port = match channel {
                    Channel::Event => crate::config::EVENT_PORT,
                    Channel::General => crate::config::GENERAL_PORT,
                };
                SocketAddrV4::new(*group, port)
            }
            Destination::Unicast {
                addr,
                event_port,
                general_port,
            } => SocketAddrV4::new(
                *addr,
                match channel {
                    Channel::Event => *event_port,
                    Channel::General => *general_port,
                },
            ),
        }
    }

    /// Where a reply to a datagram from `from` goes on `channel`: unicast replies go back to
    /// the sender's address at the configured peer port; multicast replies to the group.
    pub(crate) fn reply_destination(
        &self,
        channel: Channel,
        from: Option<SocketAddrV4>,
    ) -> SocketAddrV4 {
        let default = self.destination(channel);
        match (&self.destination, from) {
            (Destination::Unicast { .. }, Some(from)) => {
                SocketAddrV4::new(*from.ip(), default.port())
            }
            _ => default,
        }
    }

    /// Waits up to `timeout_ms` for either socket to become readable: (event, general).
    pub(crate) fn wait_readable(&self, timeout_ms: i32) -> io::Result<(bool, bool)> {
        let mut fds = [
            libc::pollfd {
                fd: self.event.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.general.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok((false, false));
            }
            return Err(err);
        }
        Ok((
            fds[0].revents & libc::POLLIN != 0,
            fds[1].revents & libc::POLLIN != 0,
        ))
    }

    /// Datagrams dropped so far because they arrived on another interface than the chosen one.
    #[cfg(test)]
    pub(crate) fn foreign_interface_datagrams(&self) -> u64 {
        self.foreign_interface
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Receives one datagram without blocking; `None` when there is none. A datagram that
    /// arrived on another interface than the chosen one (named, or owning the address given;
    /// the kernel says which, `IP_PKTINFO`) is dropped and counted: `SO_BINDTODEVICE` does
    /// that too but needs `CAP_NET_RAW`, and a socket bound to the wildcard address would
    /// otherwise take PTP traffic from every network the host is on. At most
    /// [`MAX_FOREIGN_DROPS`] are dropped per call, then it returns `None` as if nothing had
    /// arrived, so a flood on another network cannot keep the caller here.
    pub(crate) fn recv(&self, channel: Channel, buf: &mut [u8]) -> io::Result<Option<Datagram>> {
        let socket = match channel {
            Channel::Event => &self.event,
            Channel::General => &self.general,
        };
        for _ in 0..MAX_FOREIGN_DROPS {
            match recvmsg(socket.as_raw_fd(), buf, libc::MSG_DONTWAIT) {
                Ok((_, _, _, Some(arrived)))
                    if self.interface_index.is_some_and(|want| want != arrived) =>
                {
                    self.foreign_interface
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                other => return self.datagram(other),
            }
        }
        Ok(None)
    }

    #[allow(clippy::type_complexity, reason = "recvmsg's result, passed through")]
    fn datagram(
        &self,
        received: io::Result<(usize, Option<SocketAddrV4>, Option<u64>, Option<u32>)>,
    ) -> io::Result<Option<Datagram>> {
        match received {
            Ok((len, from, stamp, _)) => {
                let (rx_mono, kernel_stamp) = match stamp {
                    Some(real) => (realtime_to_monotonic(real), true),
                    None => (local_monotonic_ns(), false),
                };
                Ok(Some(Datagram {
                    len,
                    from,
                    rx_mono,
                    kernel_stamp,
                }))
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Sends an event message and returns when it left. Call
    /// [`drain_tx_stamps`](Self::drain_tx_stamps) first.
    pub(crate) fn send_event(&self, bytes: &[u8], to: SocketAddrV4) -> io::Result<Sent> {
        let fd = self.event.as_raw_fd();
        let before = local_monotonic_ns();
        self.event.send_to(bytes, &SockAddr::from(to))?;
        let after = local_monotonic_ns();
        let user = Sent {
            tx_mono: before + (after - before) / 2,
            kernel_stamp: false,
        };
        if !self.tx_stamping {
            return Ok(user);
        }
        Ok(tx_timestamp(fd).map_or(user, |real| Sent {
            tx_mono: realtime_to_monotonic(real),
            kernel_stamp: true,
        }))
    }

    /// Discards transmit stamps still queued (from a send whose stamp came too late), so
    /// they are not taken for the next one. Cheap when the queue is empty.
    pub(crate) fn drain_tx_stamps(&self) {
        if self.tx_stamping {
            let mut scratch = [0u8; 64];
            let fd = self.event.as_raw_fd();
            while recvmsg(fd, &mut scratch, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT).is_ok() {}
        }
    }

    /// Sends a general message.
    pub(crate) fn send_general(&self, bytes: &[u8], to: SocketAddrV4) -> io::Result<()> {
        self.general.send_to(bytes, &SockAddr::from(to)).map(|_| ())
    }
}

/// Waits briefly for the software transmit timestamp of the datagram just sent.
fn tx_timestamp(fd: RawFd) -> Option<u64> {
    let deadline = local_monotonic_ns() + 5_000_000;
    let mut scratch = [0u8; 64];
    loop {
        if let Ok((_, _, Some(stamp), _)) =
            recvmsg(fd, &mut scratch, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT)
        {
            return Some(stamp);
        }
        let now = local_monotonic_ns();
        if now >= deadline {
            return None;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        let wait_ms = ((deadline - now) / 1_000_000).max(1) as libc::c_int;
        // SAFETY: `pfd` is a valid pollfd for the duration of the call; POLLERR (the error
        // queue) is always reported.
        unsafe { libc::poll(&mut pfd, 1, wait_ms) };
    }
}

fn open_one(
    role: &'static str,
    transport: &Transport,
    port: u16,
    chosen: Option<&ChosenInterface>,
) -> Result<(Socket, SocketAddrV4), PtpError> {
    let want = SocketAddrV4::new(transport.bind, port);
    let option = |option: String| move |e| os_option(role, want, option, e);
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(option("socket(AF_INET, SOCK_DGRAM)".into()))?;
    // Several PTP programs (ptp4l, this one) may share the ports for multicast reception.
    socket
        .set_reuse_address(true)
        .map_err(option("SO_REUSEADDR".into()))?;
    if let Some(chosen) = chosen {
        // Tells `recv` which interface each datagram arrived on, to drop the others'.
        setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            &1 as &libc::c_int,
        )
        .map_err(option("IP_PKTINFO".into()))?;
        // Best effort (needs CAP_NET_RAW): keeps datagrams of other interfaces out.
        let mut bytes = chosen.name.as_bytes().to_vec();
        bytes.push(0);
        // SAFETY: `bytes` is a live buffer of the length passed; the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                bytes.as_ptr().cast(),
                bytes.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(interface = %chosen.name, index = chosen.index, "SO_BINDTODEVICE refused; listening on all interfaces");
        }
    }
    socket
        .bind(&SockAddr::from(want))
        .map_err(|source| PtpError::Bind {
            role,
            addr: want,
            hint: bind_hint(want, &source),
            source,
        })?;
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket_ipv4())
        .unwrap_or(want);
    let option = |option: String| move |e| os_option(role, local, option, e);
    if let Destination::Multicast { group, interface } = &transport.destination {
        let (membership, name) = match (interface, chosen) {
            // By address, as asked: the kernel then sends from that address.
            (Interface::Address(addr), _) => {
                (InterfaceIndexOrAddress::Address(*addr), addr.to_string())
            }
            (Interface::Name(name), Some(chosen)) => {
                (InterfaceIndexOrAddress::Index(chosen.index), name.clone())
            }
            (Interface::Name(name), None) => {
                return Err(PtpError::Interface {
                    interface: name.clone(),
                    reason: "no such network interface".into(),
                });
            }
        };
        socket
            .join_multicast_v4_n(group, &membership)
            .map_err(option(format!("IP_ADD_MEMBERSHIP {group} on {name}")))?;
        match membership {
            InterfaceIndexOrAddress::Index(index) => {
                let mreqn = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr { s_addr: 0 },
                    imr_address: libc::in_addr { s_addr: 0 },
                    imr_ifindex: index as libc::c_int,
                };
                setsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_IF,
                    &mreqn,
                )
                .map_err(option(format!("IP_MULTICAST_IF {name}")))?;
            }
            InterfaceIndexOrAddress::Address(addr) => socket
                .set_multicast_if_v4(&addr)
                .map_err(option(format!("IP_MULTICAST_IF {name}")))?,
        }
        socket
            .set_multicast_loop_v4(false)
            .map_err(option("IP_MULTICAST_LOOP".into()))?;
        socket
            .set_multicast_ttl_v4(1)
            .map_err(option("IP_MULTICAST_TTL".into()))?;
    }
    socket
        .set_nonblocking(true)
        .map_err(option("O_NONBLOCK".into()))?;
    Ok((socket, local))
}

/// `recvmsg` with room for control messages: (length, sender, kernel `CLOCK_REALTIME` stamp,
/// index of the interface it arrived on when `IP_PKTINFO` is set).
#[allow(clippy::type_complexity, reason = "one private call site")]
fn recvmsg(
    fd: RawFd,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, Option<SocketAddrV4>, Option<u64>, Option<u32>)> {
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 64];
    // SAFETY: sockaddr_in and msghdr are plain C structs for which all-zero bytes are valid.
    let mut addr: libc::sockaddr_in = unsafe { mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` refers to a live local buffer of the stated size.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = (n as usize).min(buf.len());
    let from = (msg.msg_namelen as usize >= size_of::<libc::sockaddr_in>()
        && addr.sin_family == libc::AF_INET as libc::sa_family_t)
        .then(|| {
            SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
                u16::from_be(addr.sin_port),
            )
        });

    let mut stamp = None;
    let mut arrived = None;
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR only reads its control fields.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: a non-null header returned by CMSG_FIRSTHDR/NXTHDR lies inside `control`.
        let header = unsafe { std::ptr::read_unaligned(cmsg) };
        // SAFETY: CMSG_DATA only offsets the pointer within the same control message.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        let data_len = (header.cmsg_len as usize).saturating_sub(data as usize - cmsg as usize);
        if header.cmsg_level == libc::IPPROTO_IP
            && header.cmsg_type == libc::IP_PKTINFO
            && data_len >= size_of::<libc::in_pktinfo>()
        {
            // SAFETY: the control message holds an in_pktinfo at `data`.
            let info = unsafe { std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>()) };
            arrived = u32::try_from(info.ipi_ifindex).ok();
        }
        if header.cmsg_level == libc::SOL_SOCKET {
            let wanted = match header.cmsg_type {
                libc::SCM_TIMESTAMPNS => 1,
                // scm_timestamping: [software, legacy, hardware]; software is the first.
                libc::SO_TIMESTAMPING => 3,
                _ => 0,
            };
            if wanted > 0 && data_len >= wanted * size_of::<libc::timespec>() {
                // SAFETY: the control message holds at least one timespec at `data`.
                let ts = unsafe { std::ptr::read_unaligned(data.cast::<libc::timespec>()) };
                let ns = timespec_ns(&ts);
                if ns != 0 {
                    stamp = Some(ns);
                }
            }
        }
        // SAFETY: `cmsg` is a valid header inside `msg`'s control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok((len, from, stamp, arrived))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;
    use crate::PTP_PRIMARY_MULTICAST;

    /// Sockets on `lo`, free ports; returns them and the event port's address on 127.0.0.1.
    fn on_loopback() -> (PtpSockets, SocketAddrV4) {
        on(Interface::Name("lo".into()))
    }

    fn transport(interface: Interface) -> Transport {
        Transport {
            bind: Ipv4Addr::UNSPECIFIED,
            event_port: 0,
            general_port: 0,
            destination: Destination::Multicast {
                group: PTP_PRIMARY_MULTICAST,
                interface,
            },
        }
    }

    fn on(interface: Interface) -> (PtpSockets, SocketAddrV4) {
        let sockets = PtpSockets::open(&transport(interface)).unwrap();
        let port = sockets.local_addrs().0.port();
        (sockets, SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    }

    fn receive_one(sockets: &PtpSockets) -> Option<Datagram> {
        let mut buf = [0u8; 128];
        let deadline = local_monotonic_ns() + 2_000_000_000;
        while local_monotonic_ns() < deadline {
            if let Some(d) = sockets.recv(Channel::Event, &mut buf).unwrap() {
                return Some(d);
            }
            if sockets.foreign_interface_datagrams() > 0 {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        None
    }

    #[test]
    fn datagrams_from_other_interfaces_are_dropped() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Arrived on the chosen interface (lo): taken.
        let (sockets, to) = on_loopback();
        sender.send_to(b"on lo", to).unwrap();
        let d = receive_one(&sockets).expect("a datagram on lo is received");
        assert_eq!(d.len, 5);
        assert_eq!(sockets.foreign_interface_datagrams(), 0);
        // The same datagram, for sockets listening on another interface: the kernel says it
        // came in on lo, so it is dropped and counted (what a datagram from another network
        // looks like to a socket bound to 0.0.0.0).
        let (mut sockets, to) = on_loopback();
        sockets.interface_index = sockets.interface_index.map(|lo| lo + 1000);
        sender.send_to(b"elsewhere", to).unwrap();
        assert!(receive_one(&sockets).is_none());
        assert_eq!(sockets.foreign_interface_datagrams(), 1);
    }

    #[test]
    fn an_interface_given_by_address_filters_like_one_given_by_name() {
        let (sockets, to) = on(Interface::Address(Ipv4Addr::LOCALHOST));
        assert_eq!(sockets.interface_index, interface_index("lo"));
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"on lo", to).unwrap();
        assert_eq!(receive_one(&sockets).map(|d| d.len), Some(5));
        // An address no interface has (TEST-NET-3) is refused, and the error names it.
        let nobody = Interface::Address(Ipv4Addr::new(203, 0, 113, 77));
        let err = PtpSockets::open(&transport(nobody)).err().unwrap();
        assert!(
            matches!(&err, PtpError::Interface { interface, .. } if interface == "203.0.113.77"),
            "{err}"
        );
        assert!(err.to_string().contains("203.0.113.77"), "{err}");
    }

    #[test]
    fn a_flood_from_another_interface_cannot_hold_recv() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (mut sockets, to) = on_loopback();
        sockets.interface_index = sockets.interface_index.map(|lo| lo + 1000);
        let flood = MAX_FOREIGN_DROPS + 36;
        for _ in 0..flood {
            sender.send_to(b"flood", to).unwrap();
        }
        // Loopback delivers at once; wait until the socket is readable all the same.
        assert!(sockets.wait_readable(2000).unwrap().0);
        let mut buf = [0u8; 64];
        assert!(sockets.recv(Channel::Event, &mut buf).unwrap().is_none());
        assert_eq!(
            sockets.foreign_interface_datagrams(),
            MAX_FOREIGN_DROPS as u64,
            "one call drops at most MAX_FOREIGN_DROPS"
        );
        assert!(sockets.recv(Channel::Event, &mut buf).unwrap().is_none());
        assert_eq!(sockets.foreign_interface_datagrams(), flood as u64);
    }
}
