"""The type stubs: the handlers' one is what the registry generates; both parse."""

import ast
import pathlib

import streamlib
from streamlib import _stubgen

PACKAGE = pathlib.Path(streamlib.__file__).parent


def test_the_handler_stub_is_generated_from_the_registry():
    committed = (PACKAGE / "handlers.pyi").read_text()
    if streamlib._native.GPU:
        assert committed == _stubgen.render(), (
            "handlers.pyi is stale: run `python -m streamlib._stubgen` (a build with `gpu`)"
        )
    else:
        # A build without `gpu` has the same handlers, some with fewer properties.
        for line in _stubgen.render().splitlines():
            if line.startswith("class "):
                assert line in committed, line


def test_the_stubs_parse_and_name_every_class():
    native = ast.parse((PACKAGE / "_native.pyi").read_text())
    classes = {n.name for n in native.body if isinstance(n, ast.ClassDef)}
    for name in ("VideoFrame", "VideoInput", "VideoOutput", "AudioInput", "DataOutput", "Tick"):
        assert name in classes
        assert hasattr(streamlib._native, name)
    handlers = ast.parse((PACKAGE / "handlers.pyi").read_text())
    stubbed = {n.name for n in handlers.body if isinstance(n, ast.ClassDef)}
    for spec in streamlib.handlers.SPECS:
        assert streamlib.handlers.class_name(spec) in stubbed


def test_handler_classes_come_from_the_registry_json():
    # Each plan name in the table names a registry handler (the table cannot drift from it).
    for registry_name in streamlib.handlers._CLASS_NAMES:
        assert registry_name in streamlib.handlers.SPECS, registry_name
    names = [streamlib.handlers.class_name(n) for n in streamlib.handlers.SPECS]
    assert len(set(names)) == len(names)
    # The specs are the registry's own serialization (what `streamlib inspect --json` prints).
    import json

    raw = {s["name"]: s for s in json.loads(streamlib._native.handler_specs_json())}
    assert raw.keys() == streamlib.handlers.SPECS.keys()
    compositor = streamlib.handlers.SPECS["compositor"]
    assert {p["name"] for p in compositor["ports"]} >= {"layer<N>", "video"}
    # Numbered and named properties match as pipeline text matches them.
    assert streamlib._native.property_name("compositor", "layer3.opacity") == "layer<N>.opacity"
    assert streamlib._native.property_name("compositor", "layerx.opacity") is None
    blur = streamlib.handlers.BlurFilter(sigma=2)
    assert blur.properties["sigma"] in ("2", "2.0")
