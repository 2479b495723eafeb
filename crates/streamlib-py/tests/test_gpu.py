"""dispatcher="gpu": a built-in handler's GPU path (blur on wgpu; lavapipe where there is no
GPU), the CPU<->GPU transfers inserted by negotiation. Needs the extension built with its
`gpu` feature (`cargo xtask py` builds it so)."""

import pytest

import streamlib
from streamlib import Stream
from streamlib.handlers import BlurFilter, NullHandler, TestPatternHandler


@pytest.mark.skipif(not streamlib._native.GPU, reason="built without the gpu feature")
def test_the_gpu_dispatcher_runs_blur_on_the_gpu(chain, probe):
    pattern = TestPatternHandler(width=64, height=48, pattern="white")
    seen = probe()
    stats = chain(pattern, Stream(BlurFilter(sigma=2.0), dispatcher="gpu"), seen).run_sync(frames=4)
    handlers = {s["handler"] for s in stats["streams"]}
    assert {"CpuToGpu", "GpuToCpu"} <= handlers, handlers
    # A white frame blurred is white; it came back to host memory for the Python probe.
    assert len(seen.addresses) == 4 and seen.first[3] == 255


@pytest.mark.skipif(streamlib._native.GPU, reason="built with the gpu feature")
def test_without_the_gpu_feature_the_gpu_dispatcher_says_so(chain):
    runtime = chain(TestPatternHandler(width=16, height=16), Stream(BlurFilter(), dispatcher="gpu"))
    with pytest.raises(streamlib.DispatcherError, match="`gpu` feature"):
        runtime.start_sync()


def test_the_gpu_dispatcher_refuses_a_handler_without_a_gpu_path(chain):
    runtime = chain(Stream(TestPatternHandler(width=16, height=16), dispatcher="gpu"), NullHandler())
    with pytest.raises(streamlib.DispatcherError, match="testpattern has no GPU path"):
        runtime.start_sync()
