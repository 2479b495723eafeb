"""Shared helpers: small Python handlers the tests wire into real pipelines, and `chain`,
which wires them."""

import pytest

from streamlib import StreamHandler, StreamRuntime, VideoInput, VideoOutput


def video_chain(*streams, clock="free", fps=30):
    """A runtime running `streams` (handlers, or `Stream`s saying how to run one), each one's
    `video` output linked to the next one's `video` input; not started."""
    runtime = StreamRuntime(fps=fps, clock=clock)
    handlers = [runtime.add_stream(s).handler for s in streams]
    for a, b in zip(handlers, handlers[1:]):
        runtime.connect(a.outputs["video"], b.inputs["video"])
    return runtime


class PassThrough(StreamHandler):
    """Forwards each frame it receives, unchanged (the same pooled buffer)."""

    def __init__(self, handler_id=None):
        super().__init__(handler_id)
        self.inputs["video"] = VideoInput("video", capabilities=["cpu"])
        self.outputs["video"] = VideoOutput("video", capabilities=["cpu"])
        self.seen = 0

    def process(self, tick):
        frame = self.inputs["video"].recv()
        if frame is not None:
            self.seen += 1
            self.outputs["video"].write(frame)


class Probe(StreamHandler):
    """Records what arrives: addresses of the pooled buffer and of the numpy view."""

    def __init__(self, handler_id=None):
        super().__init__(handler_id)
        self.inputs["video"] = VideoInput("video", capabilities=["cpu"])
        self.addresses = []
        self.first = None

    def process(self, tick):
        frame = self.inputs["video"].recv()
        if frame is None:
            return
        data = frame.data
        self.addresses.append((frame.buffer_address, data.ctypes.data, data.base is frame))
        if self.first is None:
            self.first = (data.shape, data.dtype, data.flags.writeable, int(data[0, 0, 0]))


@pytest.fixture
def pass_through():
    return PassThrough


@pytest.fixture
def probe():
    return Probe


@pytest.fixture
def chain():
    return video_chain
