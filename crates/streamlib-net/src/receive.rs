//! [`ReceiveEndpoint`]: where a receiver listens and whose datagrams it accepts, the part of
//! a receiver's configuration that video and audio share.

use std::net::{IpAddr, SocketAddr};

use crate::NetError;
use crate::socket::{SocketConfig, enable_gro, receive_binding, source_receiver_socket};
use crate::worker::{self, RECEIVE_POLL, ReceivedStream, Worker};

/// Where a receiver listens and which sender it accepts: the
/// [`endpoint`](crate::NetworkReceiveConfig::endpoint) of a
/// [`NetworkReceiveConfig`](crate::NetworkReceiveConfig) and of a
/// [`NetworkAudioReceiveConfig`](crate::NetworkAudioReceiveConfig).
///
/// ```
/// use streamlib_net::ReceiveEndpoint;
///
/// // Bound to the group 239.100.9.10 on port 5004, which it joins.
/// let endpoint = ReceiveEndpoint::for_destination("239.100.9.10:5004".parse()?);
/// assert_eq!(endpoint.multicast_group, Some("239.100.9.10".parse()?));
/// assert_eq!(endpoint.bind, "0.0.0.0:5004".parse()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveEndpoint {
    /// Local address and port (`0.0.0.0:5004`, `[::]:5004`, or a specific address).
    pub bind: SocketAddr,
    /// Multicast group to join (`None`: unicast). The socket is bound to the group, so only
    /// its datagrams arrive.
    pub multicast_group: Option<IpAddr>,
    /// The sender's address: datagrams from any other are dropped and counted
    /// (`foreign_packets`); with an IPv4 group the membership is source-specific
    /// (`IP_ADD_SOURCE_MEMBERSHIP`). `None`: any sender.
    pub source: Option<IpAddr>,
    /// The stream's SSRC (an SDP's `a=ssrc:`): packets of any other SSRC are dropped and
    /// counted, even after the stream went silent. `None`: the first valid packet's SSRC is
    /// locked, and another may take over only after 500 ms of silence (a sender restarted
    /// with a new SSRC).
    pub ssrc: Option<u32>,
}

impl ReceiveEndpoint {
    /// Unicast on `bind`, from any sender.
    pub fn new(bind: SocketAddr) -> Self {
        Self {
            bind,
            multicast_group: None,
            source: None,
            ssrc: None,
        }
    }

    /// For a stream sent to `destination` (an SDP's `c=` and `m=` port): its port, bound to
    /// its multicast group (joined) or to its unicast address when that address is this
    /// host's (else the unspecified address of its family); from any sender.
    pub fn for_destination(destination: SocketAddr) -> Self {
        let (bind, group) = receive_binding(destination);
        Self {
            multicast_group: group,
            ..Self::new(bind)
        }
    }

    /// Binds (and joins) the socket with `options` and starts receive thread `name` of
    /// `handler` feeding `stream`, locked to the SSRC when one is given. `gro`: UDP GRO is
    /// asked for (and used where the kernel grants it).
    pub(crate) fn start(
        &self,
        handler: &'static str,
        name: &str,
        options: &SocketConfig,
        gro: bool,
        mut stream: impl ReceivedStream + Send + 'static,
    ) -> Result<Worker, NetError> {
        let socket = source_receiver_socket(
            self.bind,
            self.multicast_group,
            self.source,
            options,
            RECEIVE_POLL,
        )?;
        let gro = gro && enable_gro(&socket);
        if let Some(ssrc) = self.ssrc {
            stream.lock_ssrc(ssrc);
        }
        worker::spawn_receiver(handler, name, socket, gro, self.source, stream)
    }
}
