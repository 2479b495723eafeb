"""The plan's basic demo in Python: a test pattern, a handler written in Python that inverts
each frame with numpy (no copy in or out: it reads the pooled frame and writes into a frame
from its output's pool), a blur, and a display window.

    pattern --> invert (Python, numpy) --> blur --> display | null

Headless by default (no window: the frames go to a null sink and the statistics are printed);
``--display`` opens a window (Esc or closing it stops).

Run: ``pip install ./crates/streamlib-py`` (or ``cargo xtask py``), then
``python examples/demo_basic.py [--frames 300] [--fps 30] [--size 640x480] [--display]``.
"""

import argparse
import asyncio

import numpy as np

from streamlib import Stream, StreamHandler, StreamRuntime, VideoInput, VideoOutput
from streamlib.handlers import BlurFilter, DisplayHandler, NullHandler, TestPatternHandler


class Invert(StreamHandler):
    """Inverts colour (not alpha) with numpy, writing straight into a pooled frame."""

    def __init__(self):
        super().__init__("invert")
        self.inputs["video"] = VideoInput("video", capabilities=["cpu"])
        self.outputs["video"] = VideoOutput("video", capabilities=["cpu"])

    def process(self, tick):
        # recv(): each frame once. read_latest() would also return the frame already inverted
        # (on the final, draining call), and the counts would no longer agree.
        frame = self.inputs["video"].recv()
        if frame is None:
            return
        out = self.outputs["video"].new_frame(frame.width, frame.height)
        if out is None:  # the readers hold every pooled frame: skip this tick (counted)
            return
        np.subtract(255, frame.data[..., :3], out=out.data[..., :3])
        out.data[..., 3] = frame.data[..., 3]
        self.outputs["video"].write(out)


def size(text):
    width, height = text.lower().split("x")
    return int(width), int(height)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--fps", type=float, default=30)
    parser.add_argument("--size", type=size, default=(640, 480))
    parser.add_argument("--display", action="store_true", help="open a window")
    args = parser.parse_args()

    width, height = args.size
    runtime = StreamRuntime(fps=args.fps)
    pattern = TestPatternHandler(width=width, height=height, pattern="smpte")
    invert = Invert()
    blur = BlurFilter(sigma=2.0)
    sink = DisplayHandler(title="streamlib demo_basic") if args.display else NullHandler()
    runtime.add_stream(Stream(pattern, dispatcher="asyncio"))
    runtime.add_stream(Stream(invert, dispatcher="threadpool"))
    runtime.add_stream(Stream(blur, dispatcher="threadpool"))
    runtime.add_stream(sink)
    runtime.connect(pattern.outputs["video"], invert.inputs["video"])
    runtime.connect(invert.outputs["video"], blur.inputs["video"])
    runtime.connect(blur.outputs["video"], sink.inputs["video"])

    stats = await runtime.run(frames=args.frames)
    print(f"{stats['clock_ticks']} ticks in {stats['elapsed_s']:.2f} s ({stats['tick_rate']:.1f}/s)")
    for s in stats["streams"]:
        print(
            f"  {s['id']:<12} {s['handler']:<12} {s['state']:<8} ticks {s['ticks']:>5} "
            f"skipped {s['skipped_ticks']:>4} out {s['items_out']:>5} "
            f"p50 {s['process_p50_us']:>8.0f} us p99 {s['process_p99_us']:>8.0f} us"
        )


if __name__ == "__main__":
    asyncio.run(main())
