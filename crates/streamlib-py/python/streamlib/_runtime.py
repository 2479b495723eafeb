"""StreamRuntime, Stream and StreamHandler: the plan's API over the Rust runtime.

The Python runtime only assembles a description (elements, links, dispatchers); ``start``
hands it to the Rust runtime, which builds it with the same registry and builder as pipeline
text, negotiates memory and formats, and runs every handler from one clock. Python handlers
run on the runtime's threads, taking the GIL only inside their own calls.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import weakref
import atexit
from typing import Any, Dict, Iterable, List, Optional, Union

from . import _native
from ._native import PipelineError, StreamlibError

__all__ = [
    "StreamHandler",
    "Stream",
    "StreamRuntime",
    "StreamFailed",
    "DispatcherError",
    "Pipeline",
    "launch",
]


class StreamFailed(StreamlibError):
    """A stream failed while the pipeline ran (its handler raised, or returned the wrong
    type) and was not restarted. ``stream`` is its id, ``stats`` the final statistics; the
    Python exception a Python handler raised is the ``__cause__``."""

    def __init__(self, message: str, stream: str, stats: dict):
        super().__init__(message)
        self.stream = stream
        self.stats = stats


class DispatcherError(PipelineError, ValueError):
    """A dispatcher this build or this handler cannot run on."""


class StreamHandler:
    """Base class of handlers written in Python.

    Declare ports in ``self.inputs`` / ``self.outputs`` (``VideoInput("video",
    capabilities=["cpu"])``) and implement ``process(self, tick)`` (plain or ``async``);
    ``on_start`` and ``on_stop`` are optional. ``process`` must return ``None``: it publishes
    through ``self.outputs[name].write(...)``.
    """

    def __init__(self, handler_id: Optional[str] = None):
        self.handler_id = handler_id
        self.inputs: Dict[str, Any] = {}
        self.outputs: Dict[str, Any] = {}

    def on_start(self) -> None:
        """Called once before the first ``process`` (and again after a restart)."""

    def process(self, tick: _native.Tick) -> None:
        """Processes one clock tick."""
        raise NotImplementedError(f"{type(self).__name__} must implement process(self, tick)")

    def on_stop(self) -> None:
        """Called once when the runtime stops the handler (also before a restart)."""


# The plan's dispatcher names, and the Rust ones, to what `@name` means in pipeline text.
_PLAN_DISPATCHERS = {
    "asyncio": "async",
    "threadpool": "threadpool",
    "processpool": "process",
    "gpu": "gpu",
    "inline": "inline",
    "dedicated": "dedicated",
    "async": "async",
    "process": "process",
}


def _available() -> str:
    return ", ".join(_native.DISPATCHERS)


class Stream:
    """A handler plus how to run it: ``dispatcher`` is ``"asyncio"``, ``"threadpool"``,
    ``"processpool"``, ``"gpu"`` (the plan's names) or a Rust dispatcher name (``"inline"``,
    ``"dedicated"``, ``"async"``); ``None`` picks the default (built-in handlers: the shared
    thread pool; Python handlers: a thread of their own).

    ``restart`` is the runtime's restart policy for the stream (``"never"``, the default;
    ``"on-failure"``; ``"always"``), ``max_restarts`` the restarts allowed in a row before it
    is left failed (``-1``: no cap; a stream that stayed up 1 s counts from one again): a Python exception in ``process`` is a failure like a Rust
    handler's panic."""

    def __init__(
        self,
        handler: Any,
        dispatcher: Optional[str] = None,
        restart: Optional[str] = None,
        max_restarts: Optional[int] = None,
    ):
        if not isinstance(handler, (StreamHandler, _builtin_base())):
            raise TypeError(
                f"Stream() takes a StreamHandler subclass instance or a built-in handler "
                f"(streamlib.handlers), not {type(handler).__name__}"
            )
        if dispatcher is not None and dispatcher not in _PLAN_DISPATCHERS:
            raise DispatcherError(
                f"unknown dispatcher {dispatcher!r}; the plan's dispatchers are asyncio, "
                f"threadpool, processpool, gpu; this build's own: {_available()}"
            )
        self.handler = handler
        self.dispatcher = dispatcher
        # Stream options, as pipeline text spells them (`restart=on-failure max-restarts=3`).
        self.options: Dict[str, str] = {}
        if restart is not None:
            self.options["restart"] = str(restart)
        if max_restarts is not None:
            self.options["max-restarts"] = str(int(max_restarts))

    def _resolve(self, element: str) -> tuple:
        """The `@dispatcher` and extra properties for element ``element``."""
        builtin = isinstance(self.handler, _builtin_base())
        name = self.dispatcher
        if not builtin:
            if name in (None, "asyncio", "dedicated"):
                # Its own thread; a coroutine `process` runs on the handler's own event loop.
                return "dedicated", {}
            if name in ("threadpool", "inline"):
                return name, {}
            raise DispatcherError(
                f"{element}: dispatcher={name!r} cannot run a Python handler: it runs in this "
                f"interpreter (use 'threadpool' or 'asyncio'); {name!r} is for built-in handlers"
            )
        if name is None:
            return None, {}
        if name == "gpu":
            memory = next(
                (p for p in self.handler._spec["properties"] if p["name"] == "memory"), None
            )
            if memory is None or "gpu" not in (memory["choices"] or []):
                raise DispatcherError(
                    f"{element}: dispatcher='gpu': {self.handler.registry_name} has no GPU "
                    f"path (only handlers with a memory=gpu property do, e.g. blur)"
                )
            if not _native.GPU:
                raise DispatcherError(
                    f"{element}: dispatcher='gpu' needs streamlib built with its `gpu` "
                    f"feature (wgpu), which this build of the Python package leaves out"
                )
            return "dedicated", {"memory": "gpu"}
        rust = _PLAN_DISPATCHERS[name]
        if rust not in _native.DISPATCHERS:
            raise DispatcherError(
                f"{element}: dispatcher={name!r} maps to streamlib's '@{rust}' dispatcher, "
                f"which this build does not have (it has: {_available()})"
            )
        return rust, {}


def _builtin_base():
    from .handlers import BuiltinHandler

    return BuiltinHandler


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_LIVE = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for runtime in list(_LIVE):
        try:
            runtime.stop_sync()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


class StreamRuntime:
    """Owns a pipeline: streams, links, one clock.

    ``fps``: ticks per second (``None``: the rate the sources fix, else 30); ``clock``:
    ``"software"`` (realtime) or ``"free"`` (as fast as the pipeline goes);
    ``auto_convert``: whether negotiation may insert format converters.
    """

    def __init__(
        self,
        fps: Optional[float] = None,
        clock: str = "software",
        auto_convert: bool = True,
    ):
        self.fps = fps
        self.clock = clock
        self.auto_convert = auto_convert
        self._streams: List[Stream] = []
        self._names: Dict[int, str] = {}
        self._links: List[tuple] = []
        self._native: Optional[_native.Runtime] = None
        self._final: Optional[dict] = None
        self._counts: Dict[str, int] = {}

    # Building.
    def add_stream(self, stream: Union[Stream, Any]) -> Stream:
        """Adds a stream (or a bare handler, run with the default dispatcher)."""
        if not isinstance(stream, Stream):
            stream = Stream(stream)
        if self._native is not None:
            raise PipelineError("add_stream: the runtime has started; build a new one")
        if id(stream.handler) in self._names:
            raise PipelineError(
                f"add_stream: handler {self._names[id(stream.handler)]!r} is already added"
            )
        name = self._element_name(stream.handler)
        self._names[id(stream.handler)] = name
        self._streams.append(stream)
        return stream

    def _element_name(self, handler: Any) -> str:
        if handler.handler_id:
            name = str(handler.handler_id)
        else:
            base = getattr(handler, "registry_name", None) or _snake(type(handler).__name__)
            n = self._counts.get(base, 0)
            self._counts[base] = n + 1
            name = f"{base}{n}"
        if name in self._names.values():
            raise PipelineError(f"two handlers are named {name!r}; give one another handler_id")
        return name

    def connect(self, output: Any, input: Any) -> None:
        """Links an output port to an input port (``pattern.outputs["video"]``,
        ``blur.inputs["video"]``); the kinds must match."""
        for port, side, arg in ((output, "output", "first"), (input, "input", "second")):
            direction = getattr(port, "direction", None)
            if direction is None:
                raise TypeError(
                    f"connect(): the {arg} argument must be a port (handler.{side}s[name]), "
                    f"not {type(port).__name__}"
                )
            if direction != side:
                raise PipelineError(
                    f"connect(): the {arg} argument must be an {side} port, but "
                    f"{_port_label(port)} is an {direction}"
                )
        if output.kind != input.kind:
            raise PipelineError(
                f"connect(): cannot link {_port_label(output)} ({output.kind} output) to "
                f"{_port_label(input)} ({input.kind} input): the kinds differ"
            )
        if self._native is not None:
            raise PipelineError("connect: the runtime has started; build a new one")
        self._links.append((output, input))

    def _owner(self, port: Any) -> str:
        handler = getattr(port, "handler", None)
        if handler is not None:
            if id(handler) not in self._names:
                raise PipelineError(
                    f"{_port_label(port)}: its handler was not added (runtime.add_stream)"
                )
            return self._names[id(handler)]
        for stream in self._streams:
            h = stream.handler
            if isinstance(h, StreamHandler) and any(
                p is port for p in list(h.inputs.values()) + list(h.outputs.values())
            ):
                return self._names[id(h)]
        raise PipelineError(
            f"{_port_label(port)}: no added handler declares it in self.inputs/self.outputs"
        )

    def _description(self) -> tuple:
        elements = []
        python = {}
        for stream in self._streams:
            name = self._names[id(stream.handler)]
            dispatcher, extra = stream._resolve(name)
            if isinstance(stream.handler, StreamHandler):
                python[name] = stream.handler
                element = {
                    "name": name,
                    "handler": _native.PYTHON_HANDLER,
                    "properties": {"slot": name},
                }
            else:
                properties = dict(stream.handler._given)
                properties.update(extra)
                element = {
                    "name": name,
                    "handler": stream.handler.registry_name,
                    "properties": properties,
                }
            element["properties"].update(stream.options)
            if dispatcher is not None:
                element["dispatcher"] = dispatcher
            elements.append(element)
        links = [
            {"from": f"{self._owner(o)}.{o.name}", "to": f"{self._owner(i)}.{i.name}"}
            for o, i in self._links
        ]
        return json.dumps({"elements": elements, "links": links}), python

    # Running.
    def start_sync(self, frames: Optional[int] = None) -> None:
        """Builds and starts the pipeline (``frames``: stop after that many ticks)."""
        if self._native is not None:
            raise PipelineError("start: the runtime has already started; build a new one")
        desc, python = self._description()
        self._native = _native.Runtime(
            desc,
            python,
            fps=self.fps,
            clock=self.clock,
            frames=frames,
            auto_convert=self.auto_convert,
        )
        _LIVE.add(self)
        for stream in self._streams:
            if not isinstance(stream.handler, StreamHandler):
                stream.handler._attach(self, self._names[id(stream.handler)])

    async def start(self, frames: Optional[int] = None) -> None:
        """Builds and starts the pipeline."""
        self.start_sync(frames)

    def stop_sync(self) -> dict:
        """Stops the pipeline (handlers' ``on_stop``, files finalized, threads joined) and
        returns the final statistics.

        Ctrl-C interrupts the wait (``KeyboardInterrupt``) even while a handler is stuck in
        ``process``; the stop goes on in the background and calling this again waits for it.
        From inside a handler's ``process`` it raises ``RuntimeError`` (it would wait for that
        handler): use ``tick.request_stop()`` there."""
        if self._native is None:
            if self._final is not None:
                return self._final
            raise PipelineError("stop: the runtime was not started")
        stats = self._native.stop()
        if stats is not None:
            self._final = json.loads(stats)
        _LIVE.discard(self)
        return self._final or {}

    async def stop(self) -> dict:
        """Stops the pipeline and returns the final statistics."""
        return self.stop_sync()

    @property
    def running(self) -> bool:
        return self._native is not None and self._final is None and not self._native.is_finished()

    async def run(
        self,
        frames: Optional[int] = None,
        duration: Optional[float] = None,
        raise_on_failure: bool = True,
        poll: float = 0.01,
    ) -> dict:
        """Starts (if needed) and runs until ``frames`` ticks, ``duration`` seconds, end of
        stream everywhere, or cancellation (Ctrl-C in ``asyncio.run``); then stops it —
        files are finalized whatever ended it — and returns the statistics. Raises
        ``StreamFailed`` if a stream failed, unless ``raise_on_failure`` is false."""
        if self._native is None:
            self.start_sync(frames)
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while not self._native.is_finished():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                await asyncio.sleep(poll)
        finally:
            stats = self.stop_sync()
        if raise_on_failure:
            self._raise_failures(stats)
        return stats

    def run_sync(
        self,
        frames: Optional[int] = None,
        duration: Optional[float] = None,
        raise_on_failure: bool = True,
    ) -> dict:
        """``run`` without asyncio: blocks (Ctrl-C stops the pipeline and re-raises)."""
        return asyncio.run(self.run(frames, duration, raise_on_failure))

    def _raise_failures(self, stats: dict) -> None:
        for stream in stats.get("streams", []):
            if stream.get("state") == "failed":
                message = (
                    f"stream {stream['id']!r} ({stream['handler']}) failed: "
                    f"{stream.get('error') or 'no message'}"
                )
                error = StreamFailed(message, stream["id"], stats)
                cause = self._native.failure(stream["id"]) if self._native else None
                raise error from cause

    def stats(self) -> dict:
        """Statistics now (running) or at stop: the clock and one dict per stream (ticks,
        items in and out, drops, errors, process time percentiles in µs)."""
        if self._native is not None:
            now = self._native.stats()
            if now is not None:
                return json.loads(now)
        if self._final is not None:
            return self._final
        raise PipelineError("stats: the runtime was not started")

    def graph(self) -> dict:
        """The negotiated graph: nodes (inserted converters and transfers included) and
        links with the caps agreed."""
        if self._native is None or self._native.graph() is None:
            raise PipelineError("graph: the runtime is not running")
        return json.loads(self._native.graph())

    def set_property(self, element: str, name: str, value: Any) -> None:
        """Changes a live property of a running built-in element."""
        from .handlers import to_text

        if self._native is None:
            raise PipelineError("set_property: the runtime is not running")
        self._native.set_property(element, name, to_text(value))

    def request_stop(self) -> None:
        """Asks a running pipeline to stop, from any thread; ``run`` returns soon after."""
        if self._native is not None:
            self._native.request_stop()


def _port_label(port: Any) -> str:
    handler = getattr(port, "handler", None)
    if handler is not None:
        label = handler.handler_id or handler.registry_name
        return f"{label}.{port.name}"
    return f"{type(port).__name__}({port.name!r})"


class Pipeline(StreamRuntime):
    """A pipeline from text (``streamlib.launch("testpattern ! blur ! null")``), run like a
    ``StreamRuntime``: ``await p.run(frames=100)``, ``p.run_sync()``, ``p.stats()``."""

    def __init__(self, text: str, fps: Optional[float] = None, clock: str = "software", auto_convert: bool = True):
        super().__init__(fps=fps, clock=clock, auto_convert=auto_convert)
        self.text = text
        self._desc = _native.parse_pipeline(text)

    def _description(self) -> tuple:
        return self._desc, {}

    def add_stream(self, stream: Any) -> Stream:
        raise PipelineError("a Pipeline from text takes no more streams; use StreamRuntime")


def launch(
    text: str, fps: Optional[float] = None, clock: str = "software", auto_convert: bool = True
) -> Pipeline:
    """A pipeline from text, as ``streamlib launch`` takes it: handlers by registry name,
    properties, ``@dispatcher``s, named ports. Not started: ``run`` it."""
    return Pipeline(text, fps=fps, clock=clock, auto_convert=auto_convert)
