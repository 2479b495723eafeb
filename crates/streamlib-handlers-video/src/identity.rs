//! `Identity`: passes frames on unchanged, and fails on request — the way to prove
//! supervision and exit codes from the shell (GStreamer's `identity error-after=N`).

use streamlib_ports::{
    Caps, Follow, HandlerError, InputPort, InputRef, MemoryCaps, OutputPort, OutputRef, Ports,
    ProcessContext, StreamHandler, VideoFrame,
};

/// Passes every frame on as it came (a reference, no copy). With `error_after = Some(n)` its
/// `process` returns an error once `n` frames have passed, every time it is called after.
#[derive(Debug)]
pub struct Identity {
    input: InputPort<VideoFrame>,
    output: OutputPort<VideoFrame>,
    error_after: Option<u64>,
    passed: u64,
}

impl Identity {
    /// A pass-through that fails after `error_after` frames, if given.
    pub fn new(error_after: Option<u64>) -> Self {
        let input = InputPort::new("video", MemoryCaps::CPU_GPU).with_format(Caps::video());
        let output = OutputPort::new("video", MemoryCaps::CPU_GPU).with_format(Caps::video());
        output.follows(&input, Follow::ALL);
        input.forwards_to(&output);
        Self {
            input,
            output,
            error_after,
            passed: 0,
        }
    }

    /// The `video` input.
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// The `video` output.
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }
}

impl StreamHandler for Identity {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(n) = self.error_after
            && self.passed >= n
        {
            return Err(HandlerError::msg(format_args!(
                "identity: error-after={n} reached (as asked)"
            )));
        }
        if let Some(frame) = self.input.recv() {
            self.output.write(frame);
            self.passed += 1;
        }
        Ok(())
    }
}
