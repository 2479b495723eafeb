"""Figures for the Python package: per-call overhead of a Python handler, a numpy inversion
of 1080p frames, and the plan's 3-layer 720p composite from Python.

Build the extension optimised first (``maturin develop --release -m
crates/streamlib-py/Cargo.toml`` in a venv), then ``python crates/streamlib-py/bench/bench_python.py``.
Every figure runs on the free-running clock (as fast as the pipeline goes), so it measures
the machine, not the clock.
"""

import subprocess
import sys
import pathlib
import time

import numpy as np

import streamlib
from streamlib import StreamHandler, StreamRuntime, VideoInput, VideoOutput
from streamlib.handlers import IdentityHandler, NullHandler, TestPatternHandler


class Hop(StreamHandler):
    """A middle handler: one video input, one video output."""

    def __init__(self, handler_id):
        super().__init__(handler_id)
        self.inputs["video"] = VideoInput("video")
        self.outputs["video"] = VideoOutput("video")


class Empty(Hop):
    """Does nothing: the bare cost of one `process` call from Rust into Python."""

    def process(self, tick):
        pass


class PassThrough(Hop):
    """Reads the frame and writes it on: the per-frame cost of a Python hop."""

    def process(self, tick):
        frame = self.inputs["video"].recv()
        if frame is not None:
            self.outputs["video"].write(frame)


class Invert(Hop):
    """Inverts every byte with numpy into a pooled frame."""

    def process(self, tick):
        frame = self.inputs["video"].recv()
        if frame is None:
            return
        out = self.outputs["video"].new_frame(frame.width, frame.height)
        if out is not None:
            np.subtract(255, frame.data, out=out.data)
            self.outputs["video"].write(out)


def chain(middle, width, height, frames):
    runtime = StreamRuntime(clock="free")
    source = TestPatternHandler(width=width, height=height, moving_box=False)
    sink = NullHandler()
    for h in (source, middle, sink):
        runtime.add_stream(h)
    runtime.connect(source.outputs["video"], middle.inputs["video"])
    runtime.connect(middle.outputs["video"], sink.inputs["video"])
    start = time.perf_counter()
    stats = runtime.run_sync(frames=frames)
    wall = time.perf_counter() - start
    streams = {s["id"]: s for s in stats["streams"]}
    return stats, streams, wall


def per_call():
    rows = []
    for label, middle in (("rust identity", IdentityHandler("pass")),
                          ("python empty", Empty("pass")), ("python pass-through", PassThrough("pass"))):
        stats, streams, wall = chain(middle, 16, 16, 20_000)
        s = streams["pass"]
        rows.append((label, s["process_p50_us"], s["process_p99_us"], stats["tick_rate"]))
    print("per-call cost of the middle handler (16x16 frames, 20000 ticks, free clock):")
    for label, p50, p99, rate in rows:
        print(f"  {label:<22} p50 {p50:6.2f} us  p99 {p99:6.2f} us  pipeline {rate:8.0f} ticks/s")


def invert_1080p():
    before = streamlib.bytes_copied()
    stats, streams, wall = chain(Invert("invert"), 1920, 1080, 300)
    s = streams["invert"]
    fps = s["items_out"] / stats["elapsed_s"]
    print(
        f"numpy invert of 1080p RGBA (300 frames, free clock): {fps:.1f} fps through the "
        f"pipeline; invert p50 {s['process_p50_us'] / 1000:.2f} ms p99 "
        f"{s['process_p99_us'] / 1000:.2f} ms; bytes copied by the bindings: "
        f"{streamlib.bytes_copied() - before}"
    )


def composite_720p():
    demo = pathlib.Path(__file__).resolve().parents[3] / "examples" / "demo_advanced.py"
    out = subprocess.run(
        [sys.executable, str(demo), "--free", "--frames", "300", "--size", "1280x720"],
        capture_output=True, text=True, check=True,
    )
    print("demo_advanced.py --free --frames 300 (3-layer 720p composite):")
    print("  " + out.stdout.strip().replace("\n", "\n  "))


if __name__ == "__main__":
    per_call()
    invert_1080p()
    composite_720p()
