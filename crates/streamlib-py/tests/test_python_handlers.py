"""Handlers written in Python, run by the Rust runtime; frames as numpy arrays, no copies."""

import asyncio
import time

import numpy as np
import pytest

import streamlib
from streamlib import (
    DataInput,
    DataOutput,
    Stream,
    StreamHandler,
    StreamRuntime,
    VideoInput,
    VideoOutput,
)
from streamlib.handlers import NullHandler, TestPatternHandler


def test_a_python_pass_through_forwards_every_frame(chain, pass_through):
    source = TestPatternHandler(width=64, height=48)
    forward = pass_through()
    sink = NullHandler()
    stats = chain(source, forward, sink).run_sync(frames=40)
    streams = {s["id"]: s for s in stats["streams"]}
    assert forward.seen == 40
    assert streams["pass_through0"]["handler"] == "PassThrough"
    assert streams["pass_through0"]["items_out"] == 40
    assert streams["null0"]["items_in"] == 40


def test_numpy_views_the_pooled_buffer_without_a_copy(chain, pass_through, probe):
    before = streamlib.bytes_copied()
    source = TestPatternHandler(width=64, height=48, pattern="white")
    forward = pass_through()
    seen = probe()
    chain(source, forward, seen).run_sync(frames=20)
    assert len(seen.addresses) == 20
    # The array's data pointer is the Rust pool buffer's address, and its base the frame.
    for buffer, array, based_on_frame in seen.addresses:
        assert buffer == array
        assert based_on_frame
    shape, dtype, writeable, value = seen.first
    assert shape == (48, 64, 4) and dtype == np.uint8
    assert not writeable, "received frames are read-only"
    assert value == 255
    # Pool buffers are reused: far fewer distinct addresses than frames.
    assert len({a for a, _, _ in seen.addresses}) < 20
    assert streamlib.bytes_copied() == before


def test_a_frame_written_by_python_reaches_the_next_handler_in_place(chain):
    class Writer(StreamHandler):
        def __init__(self):
            super().__init__("writer")
            self.outputs["video"] = VideoOutput("video")
            self.addresses = []

        def process(self, tick):
            frame = self.outputs["video"].new_frame(32, 16)
            if frame is None:
                return
            assert frame.writable
            frame.data[:] = tick.frame_number % 256
            self.addresses.append(frame.data.ctypes.data)
            self.outputs["video"].write(frame)
            assert not frame.writable

    class Reader(StreamHandler):
        def __init__(self):
            super().__init__("reader")
            self.inputs["video"] = VideoInput("video")
            self.got = []

        def process(self, tick):
            frame = self.inputs["video"].recv()
            if frame is not None:
                self.got.append((frame.data.ctypes.data, int(frame.data[5, 5, 2]), frame.frame_number))

    writer, reader = Writer(), Reader()
    chain(writer, reader).run_sync(frames=10)
    assert [a for a, _, _ in reader.got] == writer.addresses
    assert [v for _, v, _ in reader.got] == list(range(10))
    assert [n for _, _, n in reader.got] == list(range(10))


def test_received_frames_cannot_be_written(chain):
    class Scribble(StreamHandler):
        def __init__(self):
            super().__init__()
            self.inputs["video"] = VideoInput("video")
            self.refused = 0

        def process(self, tick):
            frame = self.inputs["video"].recv()
            if frame is None:
                return
            try:
                frame.data[0, 0, 0] = 1
            except ValueError:
                self.refused += 1

    scribble = Scribble()
    chain(TestPatternHandler(width=16, height=16), scribble).run_sync(frames=5)
    assert scribble.refused == 5


def test_async_process_and_lifecycle_hooks(chain):
    class Slow(StreamHandler):
        def __init__(self):
            super().__init__("slow")
            self.inputs["video"] = VideoInput("video")
            self.calls = []

        def on_start(self):
            self.calls.append("start")

        async def process(self, tick):
            await asyncio.sleep(0.001)
            if self.inputs["video"].recv() is not None:
                self.calls.append("frame")

        def on_stop(self):
            self.calls.append("stop")

    slow = Slow()
    chain(TestPatternHandler(width=16, height=16), Stream(slow, dispatcher="asyncio")).run_sync(frames=8)
    assert slow.calls[0] == "start" and slow.calls[-1] == "stop"
    assert slow.calls.count("frame") == 8


def test_data_ports_and_end_of_stream():
    class Count(StreamHandler):
        def __init__(self):
            super().__init__("count")
            self.outputs["n"] = DataOutput("n")

        def process(self, tick):
            self.outputs["n"].write(str(tick.frame_number), topic="count")
            if tick.frame_number == 4:
                tick.end_of_stream()

    class Sum(StreamHandler):
        def __init__(self):
            super().__init__("sum")
            self.inputs["n"] = DataInput("n")
            self.total = 0

        def process(self, tick):
            while (m := self.inputs["n"].recv()) is not None:
                assert m.topic == "count"
                self.total += int(m.text)

    count, total = Count(), Sum()
    runtime = StreamRuntime(clock="free")
    runtime.add_stream(count)
    runtime.add_stream(total)
    runtime.connect(count.outputs["n"], total.inputs["n"])
    stats = runtime.run_sync()  # ends by itself: end of stream
    assert total.total == 0 + 1 + 2 + 3 + 4
    assert {s["id"]: s["state"] for s in stats["streams"]} == {"count": "ended", "sum": "ended"}


def test_numpy_arrays_written_to_an_output_are_copied_and_counted(chain):
    class Paint(StreamHandler):
        def __init__(self):
            super().__init__("paint")
            self.outputs["video"] = VideoOutput("video")

        def process(self, tick):
            self.outputs["video"].write(np.full((8, 4, 4), 7, dtype=np.uint8))

    class Check(StreamHandler):
        def __init__(self):
            super().__init__("check")
            self.inputs["video"] = VideoInput("video")
            self.values = set()

        def process(self, tick):
            frame = self.inputs["video"].recv()
            if frame is not None:
                self.values.add((frame.width, frame.height, int(frame.data.sum())))

    before = streamlib.bytes_copied()
    check = Check()
    chain(Paint(), check).run_sync(frames=3)
    assert check.values == {(4, 8, 7 * 8 * 4 * 4)}
    assert streamlib.bytes_copied() - before == 3 * 8 * 4 * 4


def test_audio_reaches_python_as_a_numpy_view():
    from streamlib import AudioInput
    from streamlib.handlers import AudioTestSourceHandler

    class Meter(StreamHandler):
        def __init__(self):
            super().__init__("meter")
            self.inputs["audio"] = AudioInput("audio", capabilities=["cpu"])
            self.peaks = []
            self.views = []

        def process(self, tick):
            while (buffer := self.inputs["audio"].recv()) is not None:
                samples = buffer.data
                assert samples.dtype == np.float32 and samples.shape == (buffer.frames, buffer.channels)
                assert not samples.flags.writeable
                self.views.append(samples.base is buffer)
                self.peaks.append(float(np.abs(samples).max()))

    meter = Meter()
    runtime = StreamRuntime(clock="free")
    tone = AudioTestSourceHandler(wave="sine", volume=0.5, channels=2)
    runtime.add_stream(tone)
    runtime.add_stream(meter)
    runtime.connect(tone.outputs["audio"], meter.inputs["audio"])
    runtime.run_sync(frames=10)
    assert meter.peaks and all(v for v in meter.views)
    assert 0.45 < max(meter.peaks) <= 0.5001


def test_negotiation_converts_for_a_python_input(chain):
    # The pattern makes UYVY; the Python input takes RGBA only: the runtime inserts a converter.
    class Rgba(StreamHandler):
        def __init__(self):
            super().__init__("rgba")
            self.inputs["video"] = VideoInput("video", formats=["rgba8"])
            self.formats = set()

        def process(self, tick):
            frame = self.inputs["video"].recv()
            if frame is not None:
                self.formats.add((frame.format, frame.data.shape))

        def on_start(self):
            self.negotiated = self.inputs["video"].negotiated()

    reader = Rgba()
    runtime = chain(TestPatternHandler(width=64, height=48, format="uyvy"), reader)
    runtime.start_sync(frames=5)
    graph = runtime.graph()
    while runtime.running:
        time.sleep(0.01)
    runtime.stop_sync()
    assert reader.formats == {("rgba8", (48, 64, 4))}
    assert reader.negotiated["format"] == "rgba8" and reader.negotiated["width"] == 64
    assert any(node["handler"] == "convert" for node in graph["nodes"]), graph


def test_a_python_handler_holding_the_gil_does_not_stop_rust_handlers():
    class Hog(StreamHandler):
        """Keeps the GIL 30 ms per tick: pure Python, no release."""

        def __init__(self):
            super().__init__("hog")
            self.outputs["video"] = VideoOutput("video")

        def process(self, tick):
            end = time.perf_counter() + 0.03
            while time.perf_counter() < end:
                pass

    runtime = StreamRuntime(fps=100)
    hog, hog_sink = Hog(), NullHandler("hog_sink")
    source, sink = TestPatternHandler(width=32, height=16), NullHandler("sink")
    for h in (hog, hog_sink, source, sink):
        runtime.add_stream(h)
    runtime.connect(hog.outputs["video"], hog_sink.inputs["video"])
    runtime.connect(source.outputs["video"], sink.inputs["video"])
    stats = runtime.run_sync(frames=100)
    streams = {s["id"]: s for s in stats["streams"]}
    # The hog keeps up with a third of the ticks at most; the Rust branch with nearly all.
    assert streams["hog"]["ticks"] < 50
    assert streams["sink"]["items_in"] >= 90, streams["sink"]
