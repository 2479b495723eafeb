"""dispatcher="processpool": a built-in handler in a child interpreter (the `@process`
dispatcher), frames in shared memory; a crash there is contained, this interpreter lives on."""

import pytest

import streamlib
from streamlib import Stream, StreamRuntime
from streamlib.handlers import IdentityHandler, TestPatternHandler

pytestmark = pytest.mark.skipif(
    "process" not in streamlib.DISPATCHERS, reason="this build has no @process dispatcher"
)


def run(middle, probe, frames, clock="free", **stream):
    runtime = StreamRuntime(fps=60, clock=clock)
    source = TestPatternHandler(width=64, height=48, pattern="white")
    runtime.add_stream(source)
    runtime.add_stream(Stream(middle, dispatcher="processpool", **stream))
    runtime.add_stream(probe)
    runtime.connect(source.outputs["video"], middle.inputs["video"])
    runtime.connect(middle.outputs["video"], probe.inputs["video"])
    return runtime.run_sync(frames=frames, raise_on_failure=False)


def test_a_builtin_handler_runs_in_a_child_interpreter(probe):
    seen = probe()
    stats = run(IdentityHandler(), seen, 20)
    identity = next(s for s in stats["streams"] if s["id"] == "identity0")
    report = identity["report"]
    assert report["dispatcher"] == "process" and report["spawns"] == 1
    assert report["frames_zero_copy"] == 20 and report["bytes_copied"] == 0
    assert len(seen.addresses) == 20
    assert seen.first[3] == 255


def test_a_crash_in_the_child_is_contained_and_restarted(probe):
    seen = probe()
    # Two seconds at 60 fps: room for the restart (backoff, a new interpreter, the import).
    stats = run(IdentityHandler(abort_after=5), seen, 120, clock="software", restart="always")
    identity = next(s for s in stats["streams"] if s["id"] == "identity0")
    assert identity["report"]["child_failures"] >= 1
    assert identity["restarts"] >= 1
    assert len(seen.addresses) > 5


def test_a_python_handler_cannot_use_processpool(pass_through):
    runtime = StreamRuntime()
    runtime.add_stream(Stream(pass_through(), dispatcher="processpool"))
    with pytest.raises(streamlib.DispatcherError, match="cannot run a Python handler"):
        runtime.start_sync()
