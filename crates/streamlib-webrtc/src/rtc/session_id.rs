//! Session ids: the last segment of a session's `Location`, and the only thing that lets a
//! client end or trickle to it, so they must not be guessable.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 128 bits as 32 hex digits: two SipHash outputs of a counter under std's randomly keyed
/// `RandomState` (a keyed PRF: without the key, one id says nothing of the next).
pub(crate) fn new_session_id() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let word = |salt: u64| {
        let mut hasher = state.build_hasher();
        hasher.write_u64(n);
        hasher.write_u64(salt);
        hasher.finish()
    };
    format!("{:016x}{:016x}", word(0x5151), word(0xa7a7))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_differ_and_are_hex() {
        let a = super::new_session_id();
        let b = super::new_session_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
