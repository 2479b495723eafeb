"""Every built-in handler, as a Python class made from the Rust handler registry.

The classes carry no list of properties or ports of their own: each reads its registered
spec (``streamlib._native.handler_specs_json()``, what ``streamlib inspect --json``
prints), so what pipeline text accepts, these accept,
with the same types, ranges, defaults and error messages. The plan's names
(``TestPatternHandler``, ``BlurFilter``, ``DisplayHandler``, ``CompositorHandler``,
``DrawingHandler``, ``FileReaderHandler``, ``FileWriterHandler``, the network and audio
handlers) and a generic ``Handler("blur", sigma=2)`` by registry name.

Properties are keyword arguments: ``moving_box=False`` for ``moving-box``,
``layer0_opacity=0.5`` for ``layer0.opacity``; ``width=``/``height=`` fill a ``size``
property; sizes may be ``(w, h)`` tuples and colours ``(r, g, b[, a])``. ``properties={...}``
takes exact registry names.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional

from . import _native
from ._native import PropertyError



def _port(port: dict) -> dict:
    """A port of the registry's JSON (``streamlib inspect --json``), as the classes read it."""
    return {
        **port,
        # "[cpu, gpu]": the registry prints memory capabilities as a list in text.
        "capabilities": [c.strip() for c in port["caps"].strip("[]").split(",") if c.strip()],
        # Serialized only when false (an optional input), and `count` only when set.
        "required": port.get("required", True),
        "count": port.get("count"),
    }


def _property(prop: dict) -> dict:
    """A property of the registry's JSON, its type flattened (``type``, ``describe``,
    ``min``/``max``, ``choices``)."""
    ty = prop["ty"]
    return {
        **prop,
        "type": ty["type"],
        "describe": ty["accepts"],
        "min": ty.get("min"),
        "max": ty.get("max"),
        "choices": ty.get("values"),
    }


# The registry's specs, by name, from its own serialization.
SPECS: Dict[str, dict] = {
    spec["name"]: {
        **spec,
        "ports": [_port(p) for p in spec["ports"]],
        "properties": [_property(p) for p in spec["properties"]],
    }
    for spec in json.loads(_native.handler_specs_json())
}

# The plan's class names, where the registry name cannot give them (it has no word breaks:
# `testpattern`); every other handler is `<Name>Handler`. Only handlers this package has: a
# test checks that each names one.
_CLASS_NAMES = {
    "testpattern": "TestPatternHandler",
    "blur": "BlurFilter",
    "filereader": "FileReaderHandler",
    "filewriter": "FileWriterHandler",
    "networksend": "NetworkSendHandler",
    "networkreceive": "NetworkReceiveHandler",
    "networkaudiosend": "NetworkAudioSendHandler",
    "networkaudioreceive": "NetworkAudioReceiveHandler",
    "audiotestsrc": "AudioTestSourceHandler",
    "audioconvert": "AudioConvertHandler",
    "audioresample": "AudioResampleHandler",
    "audiomixer": "AudioMixerHandler",
    "audioscope": "AudioScopeHandler",
    "videorate": "VideoRateHandler",
}


def class_name(registry_name: str) -> str:
    """The Python class name of a registry handler."""
    return _CLASS_NAMES.get(
        registry_name, "".join(p.capitalize() for p in re.split(r"[-_]", registry_name)) + "Handler"
    )


def to_text(value: Any, prop_type: Optional[str] = None) -> str:
    """A Python value as pipeline-text property text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        if prop_type == "color" or len(value) in (3, 4) and prop_type != "size":
            if not all(isinstance(c, int) and 0 <= c <= 255 for c in value):
                raise PropertyError(f"a colour is 3 or 4 integers in 0..=255, got {value!r}")
            return "".join(f"{c:02x}" for c in value)
        if len(value) == 2:
            return f"{int(value[0])}x{int(value[1])}"
        raise PropertyError(f"cannot use {value!r} as a property value")
    if isinstance(value, (int, float, str)):
        return str(value)
    if hasattr(value, "__fspath__"):
        return str(value.__fspath__())
    raise PropertyError(
        f"a property value is a bool, number, str, path, (w, h) or colour tuple, not "
        f"{type(value).__name__}"
    )


def _property_for(spec: dict, kwarg: str) -> Optional[dict]:
    """The spec property a keyword argument names, trying `_` as `-` and as `.`."""
    candidates = [kwarg, kwarg.replace("_", "-")]
    for i, c in enumerate(kwarg):
        if c == "_":
            head, tail = kwarg[:i], kwarg[i + 1 :]
            candidates.append(f"{head}.{tail}")
            candidates.append(f"{head}.{tail.replace('_', '-')}")
    for candidate in candidates:
        # Matched by the registry, as pipeline text is (`layer3.opacity` is `layer<N>.opacity`).
        name = _native.property_name(spec["name"], candidate)
        if name is not None:
            prop = next(p for p in spec["properties"] if p["name"] == name)
            return {**prop, "given": candidate}
    return None


class PortRef:
    """A port of a built-in handler: what ``connect`` takes."""

    def __init__(self, handler: "BuiltinHandler", spec: dict, name: str):
        self.handler = handler
        self.name = name
        self.kind = spec["kind"]
        self.direction = spec["direction"]
        self.capabilities = list(spec["capabilities"])
        self.doc = spec["doc"]

    def __repr__(self) -> str:
        label = self.handler.handler_id or self.handler.registry_name
        return f"<{self.kind} {self.direction} {label}.{self.name}>"


class BuiltinHandler:
    """A handler of the Rust registry. Subclasses set ``registry_name``."""

    registry_name: str = ""
    # Not a test class, whatever pytest thinks of `Test...` names.
    __test__ = False

    def __init__(self, handler_id: Optional[str] = None, *, properties: Optional[Dict[str, Any]] = None, **kwargs: Any):
        spec = SPECS[self.registry_name]
        self._spec = spec
        self.handler_id = handler_id
        given: Dict[str, str] = {}
        names = {p["name"] for p in spec["properties"]}
        width = height = None
        if not names & {"width", "height"}:
            # `width=` and `height=` fill `size` (the plan's TestPatternHandler(width=, height=)).
            width, height = kwargs.pop("width", None), kwargs.pop("height", None)
        for key, value in kwargs.items():
            prop = _property_for(spec, key)
            if prop is None:
                names = ", ".join(p["name"] for p in spec["properties"]) or "none"
                raise PropertyError(
                    f"{type(self).__name__} ({self.registry_name}): unknown property {key!r}; "
                    f"its properties: {names}"
                )
            given[prop["given"]] = to_text(value, prop["type"])
        for key, value in (properties or {}).items():
            prop = _property_for(spec, key)
            given[key] = to_text(value, prop["type"] if prop else None)
        if width is not None or height is not None:
            size = next((p for p in spec["properties"] if p["name"] == "size"), None)
            if size is None:
                raise PropertyError(
                    f"{type(self).__name__} ({self.registry_name}) has no size: width= and "
                    f"height= do not apply"
                )
            default = (size["default"] or "0x0").split("x")
            w = width if width is not None else int(default[0])
            h = height if height is not None else int(default[1])
            given["size"] = f"{int(w)}x{int(h)}"
        self._given = given
        element = handler_id or self.registry_name
        # Checked now, like pipeline text: type, range, required properties.
        self.properties: Dict[str, str] = _native.validate_properties(
            self.registry_name, element, given
        )
        self.inputs: Dict[str, PortRef] = {}
        self.outputs: Dict[str, PortRef] = {}
        for port in spec["ports"]:
            target = self.inputs if port["direction"] == "input" else self.outputs
            for name in self._port_names(port):
                target[name] = PortRef(self, port, name)
        self._runtime = None
        self._element = None

    def _port_names(self, port: dict) -> List[str]:
        if "<N>" not in port["name"]:
            return [port["name"]]
        count = int(self.properties.get(port["count"] or "", "0") or 0)
        return [port["name"].replace("<N>", str(i)) for i in range(count)]

    def _attach(self, runtime: Any, element: str) -> None:
        self._runtime, self._element = runtime, element

    def set(self, name: str, value: Any) -> None:
        """Changes a live property while the pipeline runs (``blur.set("sigma", 4)``)."""
        if self._runtime is None:
            raise PropertyError(
                f"{self.registry_name}: set() changes a running handler; before start, pass "
                f"the property to the constructor"
            )
        prop = _property_for(self._spec, name)
        self._runtime.set_property(self._element, prop["given"] if prop else name, to_text(value, prop["type"] if prop else None))

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self._given.items())
        return f"{type(self).__name__}({given})"


def _make(registry_name: str) -> type:
    spec = SPECS[registry_name]
    lines = [spec["summary"], "", "Properties (keyword arguments):"]
    for p in spec["properties"]:
        default = "required" if p["default"] is None else f"default {p['default']}"
        live = ", live" if p["live"] else ""
        lines.append(f"    {p['name']}: {p['describe']} ({default}{live}). {p['doc']}")
    lines.append("Ports:")
    for p in spec["ports"]:
        lines.append(f"    {p['direction']} {p['name']} ({p['kind']}): {p['doc']}")
    return type(
        class_name(registry_name),
        (BuiltinHandler,),
        {"registry_name": registry_name, "__doc__": "\n".join(lines), "__module__": __name__},
    )


_CLASSES: Dict[str, type] = {name: _make(name) for name in SPECS}
globals().update({cls.__name__: cls for cls in _CLASSES.values()})


def by_name(registry_name: str) -> type:
    """The class of registry handler ``registry_name`` (``by_name("blur") is BlurFilter``)."""
    try:
        return _CLASSES[registry_name]
    except KeyError:
        names = ", ".join(sorted(_CLASSES))
        raise _native.PipelineError(
            f"unknown handler {registry_name!r}; handlers: {names}"
        ) from None


def Handler(registry_name: str, handler_id: Optional[str] = None, **kwargs: Any) -> BuiltinHandler:
    """A built-in handler by registry name: ``Handler("blur", sigma=2)``."""
    return by_name(registry_name)(handler_id, **kwargs)


__all__ = ["BuiltinHandler", "PortRef", "Handler", "by_name", "SPECS"] + [
    cls.__name__ for cls in _CLASSES.values()
]
