//! WebRTC for streamlib on str0m (being written).

mod rtc;
mod whep;
mod whip;

pub use whep::*;
pub use whip::*;
