"""Ctrl-C in the middle of asyncio.run stops the runtime and finalizes the files it writes."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

WRITER = textwrap.dedent(
    """
    import asyncio, subprocess, sys
    from streamlib import StreamRuntime
    from streamlib.handlers import FileWriterHandler, TestPatternHandler

    runtime = StreamRuntime(fps=30)
    pattern = TestPatternHandler(width=160, height=96)
    # Not fragmented: an MP4 is readable only once finalized (its index written at the end).
    writer = FileWriterHandler(location=sys.argv[1], fragmented=False)
    runtime.add_stream(pattern)
    runtime.add_stream(writer)
    runtime.connect(pattern.outputs["video"], writer.inputs["video"])
    print("started", flush=True)
    try:
        asyncio.run(runtime.run())
    except KeyboardInterrupt:
        # Before the interpreter exits (its atexit hook would stop the runtime too): the file
        # must already be complete when KeyboardInterrupt reaches us.
        probe = subprocess.run(["ffprobe", "-v", "error", sys.argv[1]], capture_output=True, text=True)
        print("interrupted", "finalized" if probe.returncode == 0 else "NOT finalized: " + probe.stderr, flush=True)
        sys.exit(130)
    """
)


def ffprobe_frames(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames,width,height", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["streams"][0]


@pytest.mark.skipif(
    subprocess.run(["which", "ffprobe"], capture_output=True).returncode != 0,
    reason="ffprobe is not installed (cargo xtask setup installs it)",
)
def test_ctrl_c_during_asyncio_run_finalizes_the_file(tmp_path):
    path = tmp_path / "interrupted.mp4"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "started"
    time.sleep(1.5)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "interrupted finalized" in out, out
    assert "Traceback" not in err, err
    stream = ffprobe_frames(path)
    assert (stream["width"], stream["height"]) == (160, 96)
    assert int(stream["nb_read_frames"]) >= 20
