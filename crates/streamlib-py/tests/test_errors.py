"""Bad input: clear Python exceptions carrying the Rust message, never a crashed interpreter."""

import numpy as np
import pytest

import streamlib
from streamlib import (
    AudioInput,
    DispatcherError,
    PipelineError,
    PropertyError,
    StartError,
    Stream,
    StreamFailed,
    StreamHandler,
    StreamRuntime,
    VideoInput,
    VideoOutput,
)
from streamlib.handlers import AudioTestSourceHandler, BlurFilter, NullHandler, TestPatternHandler


class Source(StreamHandler):
    """A Python source whose `process` is given."""

    def __init__(self, process, handler_id="source"):
        super().__init__(handler_id)
        self.outputs["video"] = VideoOutput("video")
        self._process = process

    def process(self, tick):
        return self._process(self, tick)


@pytest.fixture
def run_into_null(chain):
    """Runs a handler for `frames` ticks, its `video` output into a null sink."""

    def run(handler, frames=3, clock="free", **stream):
        return chain(Stream(handler, **stream), NullHandler(), clock=clock, fps=100).run_sync(frames=frames)

    return run


def test_connecting_different_kinds_is_refused():
    runtime = StreamRuntime()
    audio = AudioTestSourceHandler()
    blur = BlurFilter()
    runtime.add_stream(audio)
    runtime.add_stream(blur)
    with pytest.raises(PipelineError, match=r"audio output.*video input.*kinds differ"):
        runtime.connect(audio.outputs["audio"], blur.inputs["video"])
    with pytest.raises(PipelineError, match="must be an output port"):
        runtime.connect(blur.inputs["video"], blur.inputs["video"])
    with pytest.raises(TypeError, match="must be a port"):
        runtime.connect("video", blur.inputs["video"])


def test_a_port_in_the_wrong_dict_is_refused_at_start(run_into_null):
    class Confused(StreamHandler):
        def __init__(self):
            super().__init__("confused")
            self.inputs["video"] = VideoOutput("video")
            self.outputs["video"] = VideoOutput("video")

        def process(self, tick):
            pass

    with pytest.raises(TypeError, match=r"self.inputs\['video'\] is a VideoOutput, an output port"):
        run_into_null(Confused())


def test_wrong_port_kind_between_python_handlers():
    class Listener(StreamHandler):
        def __init__(self):
            super().__init__("listener")
            self.inputs["audio"] = AudioInput("audio")

        def process(self, tick):
            pass

    source = Source(lambda self, tick: None)
    listener = Listener()
    runtime = StreamRuntime()
    runtime.add_stream(source)
    runtime.add_stream(listener)
    with pytest.raises(PipelineError, match="kinds differ"):
        runtime.connect(source.outputs["video"], listener.inputs["audio"])


def test_a_process_returning_the_wrong_type_fails_its_stream(run_into_null):
    with pytest.raises(StreamFailed, match=r"process\(\) returned int; it must return None") as info:
        run_into_null(Source(lambda self, tick: 42))
    assert isinstance(info.value.__cause__, TypeError)
    assert info.value.stream == "source"
    streams = {s["id"]: s for s in info.value.stats["streams"]}
    assert streams["source"]["state"] == "failed"


def test_a_numpy_array_of_the_wrong_shape_or_dtype_is_refused(run_into_null):
    def wrong_shape(self, tick):
        self.outputs["video"].write(np.zeros((8, 8, 3), dtype=np.uint8))

    def wrong_dtype(self, tick):
        self.outputs["video"].write(np.zeros((8, 8, 4), dtype=np.float32))

    with pytest.raises(StreamFailed, match=r"uint8 array of shape \(height, width, 4\).*\(8, 8, 3\)") as info:
        run_into_null(Source(wrong_shape))
    assert isinstance(info.value.__cause__, ValueError)
    assert "VideoOutput 'video' of handler 'source'" in str(info.value)
    with pytest.raises(StreamFailed, match="got dtype float32"):
        run_into_null(Source(wrong_dtype))
    with pytest.raises(StreamFailed, match="write\\(\\) takes a VideoFrame or a numpy uint8 array, not str"):
        run_into_null(Source(lambda self, tick: self.outputs["video"].write("frame")))


def test_an_exception_in_on_start_is_a_start_error_with_the_cause(run_into_null):
    class Broken(Source):
        def on_start(self):
            raise RuntimeError("no camera")

    with pytest.raises(StartError, match=r"failed to start: on_start\(\) raised RuntimeError: no camera") as info:
        run_into_null(Broken(lambda self, tick: None))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert str(info.value.__cause__) == "no camera"


def test_an_exception_in_process_is_contained_and_the_rest_keeps_running():
    def explode(self, tick):
        raise ValueError(f"bad tick {tick.frame_number}")

    runtime = StreamRuntime(clock="free")
    failing = Source(explode)
    pattern = TestPatternHandler(width=16, height=16)
    sink_a, sink_b = NullHandler(), NullHandler()
    for h in (failing, pattern, sink_a, sink_b):
        runtime.add_stream(h)
    runtime.connect(failing.outputs["video"], sink_a.inputs["video"])
    runtime.connect(pattern.outputs["video"], sink_b.inputs["video"])
    with pytest.raises(StreamFailed, match=r"ValueError: bad tick 0 \(at test_errors.py:\d+ in explode\)") as info:
        runtime.run_sync(frames=10)
    streams = {s["id"]: s for s in info.value.stats["streams"]}
    assert streams["testpattern0"]["items_out"] == 10
    assert streams["null1"]["items_in"] == 10
    assert str(info.value.__cause__) == "bad tick 0"


def test_a_restart_policy_restarts_a_python_handler(run_into_null):
    calls = {"n": 0}

    def flaky(self, tick):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("once")

    # Realtime, so that the restart's 10 ms backoff ends before the clock does.
    stats = run_into_null(Source(flaky), frames=30, clock="software", restart="on-failure")
    streams = {s["id"]: s for s in stats["streams"]}
    assert streams["source"]["restarts"] == 1
    assert streams["source"]["state"] != "failed"
    assert calls["n"] > 10


def test_bad_properties_and_dispatchers_are_python_errors():
    with pytest.raises(PropertyError, match=r"sigma=-1.*out of range"):
        BlurFilter(sigma=-1)
    with pytest.raises(PropertyError, match="unknown property 'sigmaa'"):
        BlurFilter(sigmaa=2)
    with pytest.raises(PropertyError, match=r"pattern=plaid.*one of smpte, gradient, black, white"):
        TestPatternHandler(pattern="plaid")
    with pytest.raises(DispatcherError, match="unknown dispatcher 'fibers'"):
        Stream(BlurFilter(), dispatcher="fibers")
    runtime = StreamRuntime()
    runtime.add_stream(Stream(Source(lambda s, t: None), dispatcher="processpool"))
    with pytest.raises(DispatcherError, match="cannot run a Python handler"):
        runtime.start_sync()


def test_processpool_says_what_it_needs(chain):
    if "process" in streamlib.DISPATCHERS:
        pytest.skip("this build has @process (tests/test_processpool.py)")
    runtime = chain(TestPatternHandler(width=16, height=16), Stream(BlurFilter(), dispatcher="processpool"))
    with pytest.raises(DispatcherError, match="which this build does not have"):
        runtime.start_sync()


def test_a_python_handler_serves_one_runtime(run_into_null):
    source = Source(lambda self, tick: None)
    run_into_null(source, frames=1)
    with pytest.raises(ValueError, match="already belongs to handler 'source'"):
        run_into_null(source, frames=1)


def test_unknown_pipeline_text_suggests_the_name():
    with pytest.raises(PipelineError, match="unknown handler `testpatern`"):
        streamlib.launch("testpatern ! null").run_sync(frames=1)
