//! UDP for WebRTC peers: one socket per host address a bind address allows, each read by a
//! small thread that hands datagrams to the owner's inbox, and the host candidates they make.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m::Candidate;
use str0m::net::{Protocol, Receive, Transmit};

/// The largest datagram read: ICE, DTLS and SRTP packets stay under a 1500-byte MTU.
const MAX_DATAGRAM: usize = 2048;
/// How often a reader thread looks whether it should stop.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// One datagram as received, owned so it can cross to the thread that drives the peers.
#[derive(Debug)]
pub(crate) struct Datagram {
    /// When the socket returned it.
    pub at: Instant,
    /// The sender.
    pub source: SocketAddr,
    /// The local socket it arrived on (the host candidate's address).
    pub destination: SocketAddr,
    /// The payload.
    pub data: Vec<u8>,
}

impl Datagram {
    /// The datagram as str0m input, `None` when it is no STUN, DTLS, RTP or RTCP packet.
    pub fn input(&self) -> Option<str0m::Input<'_>> {
        let contents = self.data.as_slice().try_into().ok()?;
        Some(str0m::Input::Receive(
            self.at,
            Receive {
                proto: Protocol::Udp,
                source: self.source,
                destination: self.destination,
                contents,
            },
        ))
    }
}

/// The host addresses to offer as candidates for a server bound to `bind`: that address
/// alone when it is a specific one (so `127.0.0.1` offers loopback only), every address of
/// its family on this host's interfaces when it is unspecified (`0.0.0.0`, `::`).
/// IPv6 link-local addresses are left out: a candidate carries no scope.
pub(crate) fn host_addresses(bind: IpAddr) -> Vec<IpAddr> {
    if !bind.is_unspecified() {
        return vec![bind];
    }
    let mut found: Vec<IpAddr> = interface_addresses()
        .unwrap_or_else(|e| {
            tracing::warn!("cannot list this host's addresses ({e}); offering loopback only");
            Vec::new()
        })
        .into_iter()
        .filter(|ip| ip.is_ipv4() == bind.is_ipv4())
        .filter(|ip| match ip {
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
            IpAddr::V4(v4) => !v4.is_link_local(),
        })
        .collect();
    found.sort();
    found.dedup();
    if found.is_empty() {
        found.push(match bind {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    found
}

/// The UDP sockets of one endpoint (a sink's or a source's), one per host address, with a
/// reader thread each. Dropping it stops and joins the readers.
#[derive(Debug)]
pub(crate) struct UdpSockets {
    sockets: Vec<Arc<UdpSocket>>,
    candidates: Vec<Candidate>,
    readers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl UdpSockets {
    /// Binds a free UDP port on each of `addresses` and starts a reader per socket that passes
    /// every datagram to `deliver` (which returns `false` when the datagram was dropped,
    /// counted by the caller). `name` names the threads.
    pub fn bind(
        addresses: &[IpAddr],
        name: &str,
        deliver: impl Fn(Datagram) + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let deliver = Arc::new(deliver);
        let stop = Arc::new(AtomicBool::new(false));
        let mut this = Self {
            sockets: Vec::new(),
            candidates: Vec::new(),
            readers: Vec::new(),
            stop: Arc::clone(&stop),
        };
        for ip in addresses {
            let socket = UdpSocket::bind(SocketAddr::new(*ip, 0))?;
            socket.set_read_timeout(Some(READ_TIMEOUT))?;
            let local = socket.local_addr()?;
            let candidate = Candidate::host(local, "udp")
                .map_err(|e| io::Error::other(format!("no host candidate for {local}: {e}")))?;
            let socket = Arc::new(socket);
            let reader = {
                let (socket, stop, deliver) =
                    (Arc::clone(&socket), Arc::clone(&stop), Arc::clone(&deliver));
                std::thread::Builder::new()
                    .name(format!("{name} udp {local}"))
                    .spawn(move || read_loop(&socket, local, &stop, &*deliver))?
            };
            this.sockets.push(socket);
            this.candidates.push(candidate);
            this.readers.push(reader);
        }
        Ok(this)
    }

    /// The host candidates, one per socket.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// The local addresses, one per socket.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.candidates.iter().map(Candidate::addr).collect()
    }

    /// Sends what str0m asked for from the socket of its source address.
    pub fn send(&self, transmit: &Transmit) -> io::Result<()> {
        let socket = self
            .sockets
            .iter()
            .zip(&self.candidates)
            .find(|(_, c)| c.addr() == transmit.source)
            .map(|(s, _)| s)
            .or_else(|| self.sockets.first())
            .ok_or_else(|| io::Error::other("no UDP socket to send from"))?;
        socket.send_to(&transmit.contents, transmit.destination)?;
        Ok(())
    }

    /// Stops and joins the readers (at most one read timeout).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for UdpSockets {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_loop(socket: &UdpSocket, local: SocketAddr, stop: &AtomicBool, deliver: &dyn Fn(Datagram)) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, source)) => deliver(Datagram {
                at: Instant::now(),
                source,
                destination: local,
                data: buf[..n].to_vec(),
            }),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // ICMP port unreachable from a peer that went away surfaces here on Linux.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                tracing::warn!("UDP socket {local}: {e}; reading stops");
                return;
            }
        }
    }
}

/// The IP addresses of this host's interfaces (`getifaddrs`: reads the kernel's list, binds
/// nothing). The same walk as streamlib-net's, which this crate may not depend on.
fn interface_addresses() -> io::Result<Vec<IpAddr>> {
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
        let up = ifa.ifa_flags & libc::IFF_UP as libc::c_uint != 0;
        // SAFETY: the pointer comes from the same live node (or is null).
        if let (true, Some(addr)) = (up, unsafe { ip_of(ifa.ifa_addr) }) {
            addrs.push(addr);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_specific_bind_offers_itself_only() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(host_addresses(lo), vec![lo]);
    }

    #[test]
    fn an_unspecified_bind_offers_loopback_among_the_hosts() {
        let all = host_addresses(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(all.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{all:?}");
        assert!(all.iter().all(IpAddr::is_ipv4), "{all:?}");
    }
}
