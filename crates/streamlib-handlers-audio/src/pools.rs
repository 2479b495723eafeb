//! Pools of output buffers keyed by length, for transforms whose input buffers may come in
//! a few sizes (a test source alternates two at 29.97 fps): one pool per size seen, created
//! the first time (a warm-up allocation), then reused, so steady state allocates nothing.

use streamlib_buffers::{BufferPool, PoolBufMut};
use streamlib_ports::{AudioBuffer, OutputPort};

use crate::AudioError;

/// Distinct buffer sizes kept; past this the oldest pool is replaced.
const MAX_POOLS: usize = 8;
/// The least a pool holds: a few buffers beyond what the graph can hold.
const MIN_BUFFERS: usize = 8;

/// Output pools by buffer length.
pub(crate) struct PoolSet {
    handler: &'static str,
    pools: Vec<BufferPool<f32>>,
    /// Where the next new pool goes once `MAX_POOLS` exist.
    replace: usize,
}

impl PoolSet {
    pub(crate) fn new(handler: &'static str) -> Self {
        Self {
            handler,
            pools: Vec::with_capacity(MAX_POOLS),
            replace: 0,
        }
    }

    /// A buffer of `len` samples for `output`, or `Ok(None)` when that pool is empty (the
    /// caller skips the buffer; `output` counts it).
    pub(crate) fn acquire(
        &mut self,
        len: usize,
        output: &OutputPort<AudioBuffer>,
    ) -> Result<Option<PoolBufMut<f32>>, AudioError> {
        if let Some(pool) = self.pools.iter().find(|p| p.buffer_len() == len) {
            return Ok(output.acquire_or_skip(pool));
        }
        let buffers = output.pool_capacity(MIN_BUFFERS);
        let pool = BufferPool::new(self.handler, len, buffers, buffers).map_err(|source| {
            AudioError::Pool {
                handler: self.handler,
                source,
            }
        })?;
        let buf = output.acquire_or_skip(&pool);
        if self.pools.len() < MAX_POOLS {
            self.pools.push(pool);
        } else {
            self.pools[self.replace] = pool;
            self.replace = (self.replace + 1) % MAX_POOLS;
        }
        Ok(buf)
    }
}

/// Publishes the samples `handler` filled into `buf` on `output` as one buffer of `channels`
/// channels at `rate`, stamped `timestamp_ns` (a length that is not whole frames is
/// [`AudioError::Frame`], naming `handler`).
pub(crate) fn publish(
    handler: &'static str,
    output: &OutputPort<AudioBuffer>,
    buf: PoolBufMut<f32>,
    channels: u16,
    rate: u32,
    timestamp_ns: u64,
) -> Result<(), AudioError> {
    let buffer = AudioBuffer::new(buf.freeze(), channels, rate, timestamp_ns)
        .map_err(|source| AudioError::Frame { handler, source })?;
    output.write(buffer);
    Ok(())
}
