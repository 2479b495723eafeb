"""Stopping: Ctrl-C while a handler is stuck, and stop() from inside a handler."""

import subprocess
import sys
import textwrap

import pytest

from streamlib import StreamHandler, StreamRuntime, VideoOutput
from streamlib.handlers import NullHandler


STUCK = textwrap.dedent(
    """
    import os, signal, threading, time
    from streamlib import StreamHandler, StreamRuntime, VideoOutput
    from streamlib.handlers import NullHandler

    class Stuck(StreamHandler):
        def __init__(self):
            super().__init__("stuck")
            self.outputs["video"] = VideoOutput("video")
            self.entered = threading.Event()

        def process(self, tick):
            self.entered.set()
            time.sleep(2.5)

        def on_stop(self):
            print("on_stop", flush=True)

    stuck = Stuck()
    runtime = StreamRuntime(clock="free")
    runtime.add_stream(stuck)
    sink = NullHandler()
    runtime.add_stream(sink)
    runtime.connect(stuck.outputs["video"], sink.inputs["video"])
    runtime.start_sync()
    assert stuck.entered.wait(20)
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    try:
        runtime.stop_sync()
        print("stopped", round(time.monotonic() - start, 2), flush=True)
    except KeyboardInterrupt:
        print("interrupted", round(time.monotonic() - start, 2), flush=True)
    # The stop went on without us: a second stop() waits for it and returns the statistics.
    stats = runtime.stop_sync()
    print("final", sorted(s["id"] for s in stats["streams"]), flush=True)
    """
)


def test_ctrl_c_interrupts_a_stop_that_waits_for_a_stuck_handler():
    result = subprocess.run(
        [sys.executable, "-c", STUCK], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split("\n")
    interrupted = [l for l in lines if l.startswith(("interrupted", "stopped"))]
    assert interrupted and interrupted[0].startswith("interrupted"), result.stdout
    # Raised at once (the handler sleeps 2.5 s more), not when the handler returned.
    assert float(interrupted[0].split()[1]) < 1.5, result.stdout
    assert "on_stop" in lines and "final ['null0', 'stuck']" in lines, result.stdout


def test_stopping_or_starting_a_runtime_from_inside_process_is_refused():
    class StopsItself(StreamHandler):
        def __init__(self):
            super().__init__("selfstop")
            self.outputs["video"] = VideoOutput("video")
            self.runtime = None
            self.errors = []

        def process(self, tick):
            for call in (self.runtime.stop_sync, StreamRuntime(clock="free").run_sync):
                try:
                    call()
                except RuntimeError as e:
                    self.errors.append(str(e))
            tick.request_stop()

    handler = StopsItself()
    runtime = StreamRuntime(clock="free")
    runtime.add_stream(handler)
    handler.runtime = runtime
    sink = NullHandler()
    runtime.add_stream(sink)
    runtime.connect(handler.outputs["video"], sink.inputs["video"])
    runtime.run_sync(frames=100)
    assert len(handler.errors) >= 2, handler.errors
    assert handler.errors[0].startswith(
        "StreamRuntime.stop() called from inside handler `selfstop`'s process(); return from process"
    ), handler.errors[0]
    assert handler.errors[1].startswith(
        "StreamRuntime.start() called from inside handler `selfstop`'s process()"
    ), handler.errors[1]
