"""streamlib: realtime streaming pipelines in Python over the Rust runtime.

```python
import asyncio
from streamlib import StreamRuntime, Stream, StreamHandler, VideoInput, VideoOutput
from streamlib.handlers import TestPatternHandler, BlurFilter, DisplayHandler

runtime = StreamRuntime(fps=30)
pattern = TestPatternHandler(width=640, height=480, pattern="smpte")
blur = BlurFilter(sigma=2.0)
runtime.add_stream(Stream(pattern, dispatcher="asyncio"))
runtime.add_stream(Stream(blur, dispatcher="threadpool"))
runtime.connect(pattern.outputs["video"], blur.inputs["video"])
asyncio.run(runtime.run(frames=300))
```

Frames reach Python as numpy arrays over the runtime's pooled buffers, without a copy; the
GIL is held only while Python code runs. See docs/PYTHON.md.
"""

from . import _native
from ._native import (
    AudioBuffer,
    AudioInput,
    AudioOutput,
    DataInput,
    DataMessage,
    DataOutput,
    PipelineError,
    PropertyError,
    StartError,
    StreamlibError,
    Tick,
    VideoFrame,
    VideoInput,
    VideoOutput,
    bytes_copied,
)
from ._runtime import (
    DispatcherError,
    Pipeline,
    Stream,
    StreamFailed,
    StreamHandler,
    StreamRuntime,
    launch,
)
from . import handlers

DISPATCHERS = tuple(_native.DISPATCHERS)
"""The Rust dispatchers this build has (what ``@name`` accepts in pipeline text)."""

__all__ = [
    "AudioBuffer",
    "AudioInput",
    "AudioOutput",
    "DataInput",
    "DataMessage",
    "DataOutput",
    "DISPATCHERS",
    "DispatcherError",
    "Pipeline",
    "PipelineError",
    "PropertyError",
    "StartError",
    "Stream",
    "StreamFailed",
    "StreamHandler",
    "StreamRuntime",
    "StreamlibError",
    "Tick",
    "VideoFrame",
    "VideoInput",
    "VideoOutput",
    "bytes_copied",
    "handlers",
    "launch",
]
