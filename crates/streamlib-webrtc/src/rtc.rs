//! The str0m plumbing WHEP and WHIP share: UDP sockets and host candidates ([`net`]), the
//! HTTP signalling routes ([`signal`]), and one peer built from an offer and driven sans-IO
//! ([`peer`]). Everything here is crate-private; `whep` and `whip` build their endpoints on it.

pub(crate) mod net;
pub(crate) mod peer;
pub(crate) mod session_id;
pub(crate) mod signal;
