"""The plan's advanced demo in Python: a 3-layer composite at 1280x720.

    pattern --> blur ------------------> compositor.layer0 --.
    shapes (Python, numpy) ------------> compositor.layer1 ---+--> compositor --> display | null
    hud (drawing: frame number, time) -> compositor.layer2 --'

Layer 1 is a handler written in Python: it draws a moving disc with numpy straight into a
pooled frame each tick. Headless by default (the composite goes to a null sink and the
statistics are printed); ``--display`` opens a window; ``--free`` runs as fast as the
pipeline goes instead of at ``--fps`` (what the frame rate figure measures).

Run: ``python examples/demo_advanced.py [--frames 300] [--fps 30] [--size 1280x720]
[--display] [--free]``.
"""

import argparse
import asyncio

import numpy as np

from streamlib import Stream, StreamHandler, StreamRuntime, VideoOutput
from streamlib.handlers import (
    BlurFilter,
    CompositorHandler,
    DisplayHandler,
    DrawingHandler,
    NullHandler,
    TestPatternHandler,
)

STRIP = 160


class Shapes(StreamHandler):
    """A disc moving along a transparent strip, drawn with numpy into a pooled frame."""

    def __init__(self, width):
        super().__init__("shapes")
        self.width = width
        self.outputs["video"] = VideoOutput("video", width=width, height=STRIP)
        radius = STRIP * 0.4
        yy, xx = np.mgrid[0:STRIP, 0 : int(2 * radius) + 2]
        c = radius + 1
        self.disc = ((xx - c) ** 2 + (yy - STRIP / 2) ** 2) <= radius**2
        self.colour = np.array([255, 200, 0, 220], dtype=np.uint8)

    def process(self, tick):
        frame = self.outputs["video"].new_frame(self.width, STRIP)
        if frame is None:
            return
        data = frame.data
        data[:] = 0
        span = self.width - self.disc.shape[1]
        x = (tick.frame_number * 8) % (2 * span)
        x = x if x < span else 2 * span - x
        region = data[:, x : x + self.disc.shape[1]]
        region[self.disc] = self.colour
        self.outputs["video"].write(frame)


def size(text):
    width, height = text.lower().split("x")
    return int(width), int(height)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--fps", type=float, default=30)
    parser.add_argument("--size", type=size, default=(1280, 720))
    parser.add_argument("--display", action="store_true", help="open a window")
    parser.add_argument("--free", action="store_true", help="as fast as the pipeline goes")
    args = parser.parse_args()

    width, height = args.size
    runtime = StreamRuntime(fps=args.fps, clock="free" if args.free else "software")
    pattern = TestPatternHandler(width=width, height=height, pattern="smpte")
    blur = BlurFilter(sigma=2.0)
    shapes = Shapes(width)
    hud = DrawingHandler(size=(width // 2, 64), text="frame {frame}  {time} s", font_size=32)
    compositor = CompositorHandler(
        "compositor",
        size=(width, height),
        layers=3,
        layer1_y=height - STRIP - 40,
        layer1_opacity=0.85,
        layer1_z=1,
        layer2_x=32,
        layer2_y=32,
        layer2_z=2,
    )
    sink = DisplayHandler(title="streamlib demo_advanced") if args.display else NullHandler()
    runtime.add_stream(pattern)
    runtime.add_stream(Stream(blur, dispatcher="threadpool"))
    runtime.add_stream(Stream(shapes, dispatcher="threadpool"))
    runtime.add_stream(hud)
    runtime.add_stream(Stream(compositor, dispatcher="threadpool"))
    runtime.add_stream(sink)
    runtime.connect(pattern.outputs["video"], blur.inputs["video"])
    runtime.connect(blur.outputs["video"], compositor.inputs["layer0"])
    runtime.connect(shapes.outputs["video"], compositor.inputs["layer1"])
    runtime.connect(hud.outputs["video"], compositor.inputs["layer2"])
    runtime.connect(compositor.outputs["video"], sink.inputs["video"])

    stats = await runtime.run(frames=args.frames)
    composited = next(s for s in stats["streams"] if s["id"] == "compositor")
    fps = composited["items_out"] / stats["elapsed_s"] if stats["elapsed_s"] else 0.0
    print(
        f"{composited['items_out']} composites of {width}x{height} in "
        f"{stats['elapsed_s']:.2f} s: {fps:.1f} fps"
    )
    for s in stats["streams"]:
        print(
            f"  {s['id']:<12} {s['handler']:<12} {s['state']:<8} ticks {s['ticks']:>5} "
            f"skipped {s['skipped_ticks']:>4} out {s['items_out']:>5} "
            f"p50 {s['process_p50_us']:>8.0f} us p99 {s['process_p99_us']:>8.0f} us"
        )


if __name__ == "__main__":
    asyncio.run(main())
