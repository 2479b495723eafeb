//! The crate's error type: every variant names the handler and what to fix.

use streamlib_buffers::BuffersError;
use streamlib_ports::FrameError;

/// What can go wrong building or running an audio handler.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// A property is out of range (a zero or absurd rate, channel count, frequency, gain).
    #[error("{handler}: property `{property}` = {value} is invalid: {expected}")]
    InvalidProperty {
        /// The handler's pipeline name (`audiotestsrc`, `volume`, `loudness`).
        handler: &'static str,
        /// The property (`rate`, `channels`, `freq`, …).
        property: &'static str,
        /// The value given, as text.
        value: String,
        /// What would be valid.
        expected: String,
    },
    /// A buffer pool could not be created.
    #[error("{handler}: audio buffer pool: {source}")]
    Pool {
        /// The handler's pipeline name.
        handler: &'static str,
        /// Why.
        #[source]
        source: BuffersError,
    },
    /// The loudness meter refused the stream's format.
    #[error("{handler}: loudness meter for {channels} channels at {rate} Hz: {reason}")]
    Meter {
        /// The handler's pipeline name.
        handler: &'static str,
        /// Channel count of the stream.
        channels: u32,
        /// Sample rate of the stream.
        rate: u32,
        /// What the meter said.
        reason: String,
    },
    /// An output buffer could not be built.
    #[error("{handler}: {source}")]
    Frame {
        /// The handler's pipeline name.
        handler: &'static str,
        /// Why.
        #[source]
        source: FrameError,
    },
}

/// Lowest sample rate the handlers accept, Hz.
pub const MIN_RATE: u32 = 1_000;
/// Highest sample rate the handlers accept, Hz (DXD is 352.8 kHz; 768 kHz leaves room).
pub const MAX_RATE: u32 = 768_000;
/// Most channels the handlers accept (the loudness meter's limit too).
pub const MAX_CHANNELS: u16 = 64;

/// Checks a stream format: `rate` in [`MIN_RATE`]`..=`[`MAX_RATE`], `channels` in
/// `1..=`[`MAX_CHANNELS`].
pub(crate) fn check_format(
    handler: &'static str,
    rate: u32,
    channels: u16,
) -> Result<(), AudioError> {
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(AudioError::InvalidProperty {
            handler,
            property: "rate",
            value: rate.to_string(),
            expected: format!("a sample rate in {MIN_RATE} ..= {MAX_RATE} Hz"),
        });
    }
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(AudioError::InvalidProperty {
            handler,
            property: "channels",
            value: channels.to_string(),
            expected: format!("a channel count in 1 ..= {MAX_CHANNELS}"),
        });
    }
    Ok(())
}

/// Checks that `value` is finite and in `min..=max`.
pub(crate) fn check_range(
    handler: &'static str,
    property: &'static str,
    value: f64,
    min: f64,
    max: f64,
) -> Result<(), AudioError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(AudioError::InvalidProperty {
            handler,
            property,
            value: value.to_string(),
            expected: format!("a number in {min} ..= {max}"),
        })
    }
}
