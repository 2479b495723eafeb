"""Shared helpers: small Python handlers the tests wire into real pipelines."""

import numpy as np
import pytest

from streamlib import StreamHandler, VideoInput, VideoOutput


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
