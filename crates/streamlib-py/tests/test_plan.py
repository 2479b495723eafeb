"""The plan's own snippet, and its API surface, against the real runtime."""

import asyncio

import streamlib
from streamlib import StreamRuntime
from streamlib.handlers import BlurFilter, NullHandler, TestPatternHandler


def test_the_plans_snippet_runs():
    # The snippet of the package's docstring, as written there, but 15 frames, not 300.
    snippet = streamlib.__doc__.split("```python\n")[1].split("```")[0]
    run = "asyncio.run(runtime.run(frames=300))"
    assert run in snippet, snippet
    scope = {}
    exec(snippet.replace(run, "stats = asyncio.run(runtime.run(frames=15))"), scope)
    streams = {s["id"]: s for s in scope["stats"]["streams"]}
    # Realtime: a loaded machine may make the source skip a tick or two.
    assert streams["testpattern0"]["items_out"] >= 10
    assert streams["testpattern0"]["dispatcher"] == "async"
    assert streams["blur0"]["ticks"] >= 1
    assert all(s["state"] == "ended" for s in streams.values()), streams


def test_start_and_stop_are_awaitable_and_stats_are_dicts():
    async def main():
        runtime = StreamRuntime(fps=60)
        pattern = TestPatternHandler(width=64, height=48)
        sink = NullHandler()
        runtime.add_stream(pattern)
        runtime.add_stream(sink)
        runtime.connect(pattern.outputs["video"], sink.inputs["video"])
        await runtime.start()
        await asyncio.sleep(0.3)
        live = runtime.stats()
        final = await runtime.stop()
        return live, final

    live, final = asyncio.run(main())
    assert isinstance(live, dict) and live["streams"]
    ticks = {s["id"]: s["ticks"] for s in final["streams"]}
    assert ticks["testpattern0"] > 5, final
    assert final["clock_ticks"] >= ticks["testpattern0"]


def test_the_plans_patterns_are_offered():
    for pattern in ("smpte", "gradient", "black", "white"):
        runtime = StreamRuntime(clock="free")
        source = TestPatternHandler(width=32, height=16, pattern=pattern, moving_box=False)
        sink = NullHandler()
        runtime.add_stream(source)
        runtime.add_stream(sink)
        runtime.connect(source.outputs["video"], sink.inputs["video"])
        stats = runtime.run_sync(frames=3)
        assert {s["id"]: s["items_in"] for s in stats["streams"]}["null0"] == 3


def test_pipelines_from_text():
    pipeline = streamlib.launch("testpattern size=64x36 ! blur sigma=1.5 ! null", clock="free")
    stats = pipeline.run_sync(frames=5)
    streams = {s["id"]: s for s in stats["streams"]}
    assert streams["testpattern0"]["items_out"] == 5
    assert streams["null0"]["items_in"] == 5


def test_every_registry_handler_has_a_class_built_from_its_spec():
    for name, spec in streamlib.handlers.SPECS.items():
        cls = streamlib.handlers.by_name(name)
        assert cls.registry_name == name
        assert spec["summary"] in cls.__doc__
    assert streamlib.handlers.TestPatternHandler.registry_name == "testpattern"
    assert streamlib.handlers.BlurFilter.registry_name == "blur"
    assert streamlib.handlers.FileWriterHandler.registry_name == "filewriter"
    blur = streamlib.handlers.Handler("blur", sigma=3)
    # Defaults come from the registry, not from Python.
    defaults = {p["name"]: p["default"] for p in streamlib.handlers.SPECS["blur"]["properties"]}
    assert set(blur.properties) == {k for k in defaults if "<" not in k}
    assert float(blur.properties["sigma"]) == 3.0


def test_live_properties_reach_a_running_handler():
    runtime = StreamRuntime(fps=60)
    pattern = TestPatternHandler(width=64, height=48)
    blur = BlurFilter(sigma=1.0)
    sink = NullHandler()
    for h in (pattern, blur, sink):
        runtime.add_stream(h)
    runtime.connect(pattern.outputs["video"], blur.inputs["video"])
    runtime.connect(blur.outputs["video"], sink.inputs["video"])
    runtime.start_sync()
    try:
        blur.set("sigma", 4.0)
        with __import__("pytest").raises(streamlib.PipelineError, match="out of range"):
            blur.set("sigma", 1e9)
    finally:
        runtime.stop_sync()
