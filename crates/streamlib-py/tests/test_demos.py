"""The plan's demos in Python run headless (small and short, so the debug build keeps up)."""

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"


def run(script, *args):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_demo_basic_runs_headless():
    out = run("demo_basic.py", "--frames", "15", "--size", "160x120", "--fps", "60")
    assert "invert" in out and "Invert" in out
    assert "failed" not in out


def test_demo_advanced_composites_three_layers_headless():
    out = run("demo_advanced.py", "--frames", "10", "--size", "320x240", "--free")
    assert "composites of 320x240" in out
    for stream in ("shapes", "drawing0", "compositor", "blur0"):
        assert stream in out
    assert "failed" not in out
