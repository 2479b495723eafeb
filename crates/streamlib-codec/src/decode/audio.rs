//! Opus packets into interleaved `f32` audio buffers from a pool.

use ffmpeg::codec;
use ffmpeg::format::Sample;
use ffmpeg::format::sample::Type as SampleType;
use ffmpeg::{Error, frame};
use ffmpeg_next as ffmpeg;
use streamlib_buffers::BufferPool;
use streamlib_ports::AudioBuffer;

use super::{DecodeError, DecodeStats, is_again};

/// Opus always decodes at 48 kHz (RFC 7587: the RTP clock is 48 kHz whatever was encoded).
pub const OPUS_SAMPLE_RATE: u32 = 48_000;
/// Pools kept for different buffer lengths (Opus frames are 2.5 to 120 ms; a sender keeps
/// one length in practice).
const MAX_POOLS: usize = 4;
/// Buffers per pool: an ordered output holds up to its queue's capacity (64 by default).
const POOL_BUFFERS: usize = 96;

/// Decodes one Opus stream into interleaved `f32` [`AudioBuffer`]s at 48 kHz with the
/// stream's channel count (the `channels` given to [`new`](Self::new), 2 for WebRTC's
/// `opus/48000/2`, whether the sender encodes mono or stereo).
pub struct AudioDecoder {
    decoder: codec::decoder::Audio,
    decoded: frame::Audio,
    packet: ffmpeg::Packet,
    channels: u16,
    pools: Vec<BufferPool<f32>>,
    stats: DecodeStats,
}

// SAFETY: the decoder context, frame and packet are owned by this value and only touched
// through `&mut self`; FFmpeg's codec contexts have no thread affinity.
unsafe impl Send for AudioDecoder {}

impl AudioDecoder {
    /// Opens FFmpeg's Opus decoder for `channels` (1 or 2) output channels.
    pub fn new(channels: u16) -> Result<Self, DecodeError> {
        let open = |reason: String| DecodeError::Open {
            codec: "opus",
            reason,
        };
        if !(1..=2).contains(&channels) {
            return Err(open(format!(
                "{channels} channels asked for; Opus over RTP decodes to 1 or 2"
            )));
        }
        ffmpeg::init().map_err(|e| open(format!("FFmpeg failed to initialise: {e}")))?;
        let found = codec::decoder::find(codec::Id::OPUS)
            .ok_or_else(|| open("this FFmpeg has no decoder for it".to_owned()))?;
        let mut context = codec::context::Context::new_with_codec(found);
        // SAFETY: `context` owns a valid AVCodecContext that is not opened yet; without an
        // identification header (RTP carries none) the decoder takes rate and channels from
        // these fields.
        unsafe {
            let raw = context.as_mut_ptr();
            (*raw).sample_rate = OPUS_SAMPLE_RATE as i32;
            ffmpeg::ffi::av_channel_layout_default(&mut (*raw).ch_layout, i32::from(channels));
        }
        let decoder = context
            .decoder()
            .open_as(found)
            .and_then(|d| d.audio())
            .map_err(|e| open(e.to_string()))?;
        Ok(Self {
            decoder,
            decoded: frame::Audio::empty(),
            packet: ffmpeg::Packet::empty(),
            channels,
            pools: Vec::new(),
            stats: DecodeStats::default(),
        })
    }

    /// Output channels.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// The counters so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Decodes one Opus packet and calls `out` with its samples, stamped `timestamp_ns`.
    /// An empty packet (some senders send them for silence) decodes to nothing.
    pub fn decode(
        &mut self,
        packet: &[u8],
        timestamp_ns: u64,
        out: &mut dyn FnMut(AudioBuffer),
    ) -> Result<usize, DecodeError> {
        self.stats.packets += 1;
        if packet.is_empty() {
            return Ok(0);
        }
        let bad = |reason: String| DecodeError::Packet {
            codec: "opus",
            bytes: packet.len(),
            reason,
        };
        self.packet = ffmpeg::Packet::copy(packet);
        if let Err(e) = self.decoder.send_packet(&self.packet)
            && !is_again(&e)
        {
            self.stats.errors += 1;
            return Err(bad(e.to_string()));
        }
        let mut count = 0;
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {}
                Err(Error::Eof) => return Ok(count),
                Err(e) if is_again(&e) => return Ok(count),
                Err(e) => {
                    self.stats.errors += 1;
                    return Err(bad(e.to_string()));
                }
            }
            if let Some(buffer) = self.interleave(timestamp_ns)? {
                self.stats.decoded += 1;
                count += 1;
                out(buffer);
            } else {
                self.stats.pool_exhausted += 1;
            }
        }
    }

    /// The decoded frame as interleaved f32 of `channels` channels (a mono stream is copied
    /// to both channels of a stereo output, a stereo one mixed down for mono).
    fn interleave(&mut self, timestamp_ns: u64) -> Result<Option<AudioBuffer>, DecodeError> {
        let bad = |reason: String| DecodeError::Convert {
            codec: "opus",
            reason,
        };
        let frames = self.decoded.samples();
        let src_channels = usize::from(self.decoded.channels()).max(1);
        let channels = usize::from(self.channels);
        let len = frames * channels;
        if len == 0 {
            return Ok(None);
        }
        let pool = match self.pools.iter().position(|p| p.buffer_len() == len) {
            Some(i) => &self.pools[i],
            None => {
                if self.pools.len() >= MAX_POOLS {
                    self.pools.remove(0);
                }
                let pool = BufferPool::new("opus decoder", len, 4, POOL_BUFFERS)
                    .map_err(|e| bad(e.to_string()))?;
                self.pools.push(pool);
                &self.pools[self.pools.len() - 1]
            }
        };
        let Ok(mut buf) = pool.acquire() else {
            return Ok(None);
        };
        let format = self.decoded.format();
        let sample = |c: usize, i: usize| -> f32 {
            let c = c.min(src_channels - 1);
            read_sample(&self.decoded, format, src_channels, c, i)
        };
        for i in 0..frames {
            for c in 0..channels {
                buf[i * channels + c] = if channels == 1 && src_channels > 1 {
                    (0..src_channels).map(|s| sample(s, i)).sum::<f32>() / src_channels as f32
                } else {
                    sample(c, i)
                };
            }
        }
        AudioBuffer::new(buf.freeze(), self.channels, OPUS_SAMPLE_RATE, timestamp_ns)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }
}

/// Sample `i` of channel `c` as f32, whatever FFmpeg's decoder produced (the native Opus
/// decoder: planar f32; libopus: packed f32 or s16).
fn read_sample(frame: &frame::Audio, format: Sample, channels: usize, c: usize, i: usize) -> f32 {
    let (plane, index) = match format {
        Sample::F32(SampleType::Planar) | Sample::I16(SampleType::Planar) => (c, i),
        _ => (0, i * channels + c),
    };
    let data = frame.data(plane);
    match format {
        Sample::F32(_) => data
            .get(index * 4..index * 4 + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0.0, f32::from_ne_bytes),
        Sample::I16(_) => data
            .get(index * 2..index * 2 + 2)
            .and_then(|b| b.try_into().ok())
            .map_or(0.0, |b| f32::from(i16::from_ne_bytes(b)) / 32768.0),
        _ => 0.0,
    }
}
