//! The handlers streamlib ships, registered under their pipeline names.

#[cfg(feature = "video")]
mod video;

#[cfg(feature = "file")]
mod file;

#[cfg(feature = "net")]
mod net;

#[cfg(feature = "audio")]
mod audio;
#[cfg(feature = "audio-device")]
mod audio_device;
#[cfg(feature = "audio")]
mod audio_resample;
#[cfg(feature = "audio")]
mod audio_scope;

#[cfg(feature = "gpu")]
pub mod gpu;

#[cfg(feature = "hls")]
mod hls;

#[cfg(feature = "webrtc")]
mod webrtc;
#[cfg(feature = "webrtc")]
mod webrtc_src;

use crate::Registry;

/// Registers the format converters negotiation may insert (`convert`, `scale`, `videorate`
/// with the `video` feature, `audioconvert` with `audio`): what a pipeline built from text gets, and what a runtime built
/// in Rust needs to bridge formats (`register_converters(runtime.converters_mut())`).
pub fn register_converters(converters: &mut streamlib_runtime::ConverterRegistry) {
    #[cfg(feature = "video")]
    video::register_converters(converters);
    #[cfg(feature = "audio")]
    audio::register_converters(converters);
    #[cfg(feature = "audio")]
    audio_resample::register_converters(converters);
    #[cfg(not(any(feature = "video", feature = "audio")))]
    let _ = converters;
}

impl Registry {
    /// Every handler this build ships: with the `video` feature `testpattern`, `blur`,
    /// `compositor`, `drawing`, `display` (with a window system), `null`; with `file`
    /// `filereader` and `filewriter`; with `net` `networksend`, `networkreceive` (ST 2110-20
    /// video) and `networkaudiosend`, `networkaudioreceive` (ST 2110-30 audio); with `audio`
    /// `audiotestsrc`, `volume` and `loudness`. With `gpu`,
    /// `blur memory=gpu|any` runs on the GPU, and a pipeline that asks for it gets the
    /// CPU↔GPU transfers inserted, on one GPU context the registry's pipelines share, opened
    /// the first time a pipeline needs it.
    pub fn builtin() -> Self {
        #[allow(unused_mut, reason = "nothing is registered without features")]
        let mut registry = Registry::new();
        #[cfg(feature = "gpu")]
        let gpu = gpu::SharedContext::default();
        #[cfg(feature = "gpu")]
        gpu::register(&mut registry, &gpu);
        #[cfg(feature = "video")]
        video::register(
            &mut registry,
            #[cfg(feature = "gpu")]
            &gpu,
        );
        #[cfg(feature = "file")]
        file::register(&mut registry);
        #[cfg(feature = "net")]
        net::register(&mut registry);
        #[cfg(feature = "audio")]
        audio::register(&mut registry);
        #[cfg(feature = "audio")]
        audio_resample::register(&mut registry);
        #[cfg(feature = "audio")]
        audio_scope::register(&mut registry);
        #[cfg(feature = "audio-device")]
        audio_device::register(&mut registry);
        #[cfg(feature = "hls")]
        hls::register(&mut registry);
        #[cfg(feature = "webrtc")]
        webrtc::register(&mut registry);
        #[cfg(feature = "webrtc")]
        webrtc_src::register(&mut registry);
        registry
    }
}
