//! FFmpeg's `mp4` (fragmented, CMAF-style) and `mpegts` muxers writing into memory through a
//! custom AVIO context, cut on demand: [`Muxer::cut`] flushes what was written since the last
//! cut (an fMP4 `moof`+`mdat` fragment, or MPEG-TS packets) and returns its bytes.

use std::ffi::{CString, c_int, c_void};
use std::ptr;

use ffmpeg::ffi;
use ffmpeg::packet::Mut as _;
use ffmpeg_next as ffmpeg;

use crate::SegmentFormat;

/// Size of the AVIO buffer between the muxer and our byte vector.
const IO_BUFFER: usize = 64 * 1024;

/// What the muxer was asked for that it could not do.
#[derive(Debug)]
pub(crate) struct MuxError(pub String);

fn fail(what: &str, ret: c_int) -> MuxError {
    MuxError(format!("{what}: {}", ffmpeg::Error::from(ret)))
}

/// A muxer writing into memory.
pub(crate) struct Muxer {
    ctx: *mut ffi::AVFormatContext,
    /// Where the AVIO callback appends; boxed so its address is stable for the callback.
    #[allow(
        clippy::box_collection,
        reason = "the AVIO context keeps a pointer to the Vec itself, which must not move"
    )]
    out: Box<Vec<u8>>,
    /// (encoder time base, stream time base) per stream.
    time_bases: Vec<(ffi::AVRational, ffi::AVRational)>,
    format: SegmentFormat,
    /// Bytes of the header (`ftyp`+`moov` for fMP4: the init segment).
    header: Vec<u8>,
}

// SAFETY: the format context, its AVIO context and the byte vector are owned by this value
// alone and used only through `&mut self`; FFmpeg's muxers keep no thread affinity.
unsafe impl Send for Muxer {}

/// The AVIO write callback: appends to the `Vec<u8>` behind `opaque`.
unsafe extern "C" fn write_packet(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    let Ok(len) = usize::try_from(size) else {
        return 0;
    };
    // SAFETY: `opaque` is the `Box<Vec<u8>>` of the muxer that owns this AVIO context, alive
    // as long as the context (freed first in `Drop`); `buf` holds `size` bytes from FFmpeg.
    unsafe {
        let out = &mut *opaque.cast::<Vec<u8>>();
        out.extend_from_slice(std::slice::from_raw_parts(buf, len));
    }
    size
}

/// One stream for [`Muxer::new`]: its codec parameters and its packets' time base.
pub(crate) struct StreamSpec {
    pub parameters: ffmpeg::codec::Parameters,
    pub time_base: ffmpeg::Rational,
}

impl Muxer {
    /// Opens the muxer for `streams` (video first) and writes the header.
    pub(crate) fn new(format: SegmentFormat, streams: &[StreamSpec]) -> Result<Self, MuxError> {
        let name = CString::new(match format {
            SegmentFormat::Fmp4 => "mp4",
            SegmentFormat::Ts => "mpegts",
        })
        .map_err(|_| MuxError("muxer name".to_owned()))?;
        let mut ctx = ptr::null_mut();
        // SAFETY: plain allocation with a valid, NUL-terminated muxer name.
        let ret = unsafe {
            ffi::avformat_alloc_output_context2(&mut ctx, ptr::null(), name.as_ptr(), ptr::null())
        };
        if ret < 0 || ctx.is_null() {
            return Err(fail("allocate the muxer", ret));
        }
        let mut muxer = Self {
            ctx,
            out: Box::new(Vec::with_capacity(256 * 1024)),
            time_bases: Vec::new(),
            format,
            header: Vec::new(),
        };
        for spec in streams {
            // SAFETY: `ctx` is a valid output context; the new stream belongs to it; the
            // parameters are copied from a valid AVCodecParameters.
            unsafe {
                let stream = ffi::avformat_new_stream(muxer.ctx, ptr::null());
                if stream.is_null() {
                    return Err(MuxError("add a stream: out of memory".to_owned()));
                }
                let ret =
                    ffi::avcodec_parameters_copy((*stream).codecpar, spec.parameters.as_ptr());
                if ret < 0 {
                    return Err(fail("copy the codec parameters", ret));
                }
                (*(*stream).codecpar).codec_tag = 0;
                (*stream).time_base = spec.time_base.into();
            }
        }
        // SAFETY: the buffer is handed to the AVIO context, which owns it from here (freed
        // in `Drop`); `out` outlives the context.
        unsafe {
            let buffer = ffi::av_malloc(IO_BUFFER).cast::<u8>();
            if buffer.is_null() {
                return Err(MuxError("allocate the I/O buffer".to_owned()));
            }
            let opaque = ptr::from_mut::<Vec<u8>>(&mut muxer.out).cast::<c_void>();
            let pb = ffi::avio_alloc_context(
                buffer,
                IO_BUFFER as c_int,
                1,
                opaque,
                None,
                Some(write_packet),
                None,
            );
            if pb.is_null() {
                ffi::av_free(buffer.cast());
                return Err(MuxError("allocate the I/O context".to_owned()));
            }
            (*muxer.ctx).pb = pb;
            (*muxer.ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
        }
        let mut options = ffmpeg::Dictionary::new();
        if format == SegmentFormat::Fmp4 {
            // An init segment (ftyp+moov, no samples) at the header, then a moof+mdat
            // fragment at each cut, its offsets relative to itself (CMAF); no index at the
            // end (a live stream has none).
            options.set(
                "movflags",
                "frag_custom+empty_moov+default_base_moof+skip_trailer",
            );
        }
        // SAFETY: `ctx` is complete (streams, pb); `raw` is the dictionary `options` gave up,
        // ours to free.
        let ret = unsafe {
            let mut raw = options.disown();
            let ret = ffi::avformat_write_header(muxer.ctx, &mut raw);
            ffi::av_dict_free(&mut raw);
            ret
        };
        if ret < 0 {
            return Err(fail("write the header", ret));
        }
        for (i, spec) in streams.iter().enumerate() {
            // SAFETY: stream `i` exists (added above); its time base is set by the header.
            let stream_tb = unsafe { (**(*muxer.ctx).streams.add(i)).time_base };
            muxer.time_bases.push((spec.time_base.into(), stream_tb));
        }
        muxer.flush_io();
        muxer.header = std::mem::take(&mut *muxer.out);
        Ok(muxer)
    }

    /// The header's bytes: the fMP4 init segment (`ftyp`+`moov`); for MPEG-TS nothing a
    /// segment needs (tables are written with the packets).
    pub(crate) fn header(&self) -> &[u8] {
        &self.header
    }

    /// Writes one packet of stream `index` (timestamps in that stream's packet time base).
    pub(crate) fn write(
        &mut self,
        index: usize,
        data: &[u8],
        pts: i64,
        dts: i64,
        duration: i64,
        keyframe: bool,
    ) -> Result<(), MuxError> {
        let Some(&(from, to)) = self.time_bases.get(index) else {
            return Err(MuxError(format!("no stream {index}")));
        };
        let mut packet = ffmpeg::Packet::copy(data);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(dts));
        packet.set_duration(duration);
        if keyframe {
            packet.set_flags(ffmpeg::codec::packet::Flags::KEY);
        }
        packet.set_stream(index);
        packet.rescale_ts(from, to);
        // SAFETY: `ctx` is a valid muxer whose header was written; the packet is valid and
        // stays ours (av_write_frame does not take ownership).
        let ret = unsafe { ffi::av_write_frame(self.ctx, packet.as_mut_ptr()) };
        if ret < 0 {
            return Err(fail("write a packet", ret));
        }
        Ok(())
    }

    /// Makes the next MPEG-TS packets start with the PAT and PMT again, so a segment that
    /// starts there is decodable on its own.
    pub(crate) fn resend_headers(&mut self) {
        if self.format != SegmentFormat::Ts {
            return;
        }
        // SAFETY: `ctx` is a valid mpegts muxer; the option exists on its private context.
        unsafe {
            let _ = ffi::av_opt_set(
                (*self.ctx).priv_data,
                c"mpegts_flags".as_ptr(),
                c"+resend_headers".as_ptr(),
                0,
            );
        }
    }

    /// Flushes what was written since the last cut and returns its bytes: one fMP4
    /// fragment, or the MPEG-TS packets. Empty when nothing was written.
    pub(crate) fn cut(&mut self) -> Result<Vec<u8>, MuxError> {
        // SAFETY: a null packet asks the muxer to flush (both muxers allow it).
        let ret = unsafe { ffi::av_write_frame(self.ctx, ptr::null_mut()) };
        if ret < 0 {
            return Err(fail("flush a fragment", ret));
        }
        self.flush_io();
        let capacity = self.out.capacity();
        Ok(std::mem::replace(
            &mut *self.out,
            Vec::with_capacity(capacity),
        ))
    }

    /// Writes the trailer; what it adds (nothing for fMP4 with `skip_trailer`) is returned.
    pub(crate) fn finish(&mut self) -> Result<Vec<u8>, MuxError> {
        let mut rest = self.cut()?;
        // SAFETY: `ctx` is a valid muxer whose header was written; called once (from here).
        let ret = unsafe { ffi::av_write_trailer(self.ctx) };
        if ret < 0 {
            return Err(fail("write the trailer", ret));
        }
        self.flush_io();
        rest.append(&mut self.out);
        Ok(rest)
    }

    fn flush_io(&mut self) {
        // SAFETY: `pb` is the valid AVIO context set in `new`.
        unsafe { ffi::avio_flush((*self.ctx).pb) };
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        // SAFETY: `ctx` and its custom `pb` were allocated in `new`; the AVIO buffer and
        // context are freed here (FFmpeg does not, for custom I/O), then the format context.
        unsafe {
            let mut pb = (*self.ctx).pb;
            if !pb.is_null() {
                ffi::av_freep(ptr::from_mut(&mut (*pb).buffer).cast());
                ffi::avio_context_free(&mut pb);
                (*self.ctx).pb = ptr::null_mut();
            }
            ffi::avformat_free_context(self.ctx);
        }
    }
}
