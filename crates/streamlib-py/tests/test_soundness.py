"""What Python cannot do to the runtime's buffers: write a frame readers already share, make
the bindings read past an array, or read misaligned samples."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import streamlib
from streamlib import AudioInput, AudioOutput, StreamHandler, StreamRuntime, VideoInput, VideoOutput


class Reader(StreamHandler):
    """Records the first pixel and the size of each frame it receives."""

    def __init__(self):
        super().__init__("reader")
        self.inputs["video"] = VideoInput("video")
        self.got = []

    def process(self, tick):
        frame = self.inputs["video"].recv()
        if frame is not None:
            self.got.append((frame.width, frame.height, int(frame.data[0, 0, 0])))


def run_writer(writer, frames=4):
    reader = Reader()
    runtime = StreamRuntime(clock="free", fps=100)
    runtime.add_stream(writer)
    runtime.add_stream(reader)
    runtime.connect(writer.outputs["video"], reader.inputs["video"])
    runtime.run_sync(frames=frames)
    return reader


class KeepsArrays(StreamHandler):
    """Fills a frame with 9, keeps arrays over it across write(), then writes 0 through them."""

    def __init__(self, keep):
        super().__init__("writer")
        self.outputs["video"] = VideoOutput("video")
        self.keep = keep
        self.refused = 0
        self.published = []

    def process(self, tick):
        frame = self.outputs["video"].new_frame(8, 4)
        if frame is None:
            return
        frame.data[...] = 9
        kept = self.keep(frame)
        self.outputs["video"].write(frame)
        assert not frame.writable
        for array in kept:
            try:
                array[...] = 0
            except ValueError:
                self.refused += 1
        # What the readers got: the published bytes, read through the frame itself.
        self.published.append(int(np.asarray(frame).max()))


def test_data_kept_across_write_turns_read_only_without_a_copy():
    before = streamlib.bytes_copied()
    writer = KeepsArrays(lambda f: [f.data])
    reader = run_writer(writer)
    assert writer.refused == 4, "the array `data` returned must be read-only once written"
    assert writer.published == [9] * 4
    assert [v for _, _, v in reader.got] == [9] * len(reader.got) and reader.got
    # Nothing else viewed the pixels: published in place.
    assert streamlib.bytes_copied() == before


def test_a_frames_arrays_cannot_be_made_writable_again():
    class Sneaky(KeepsArrays):
        def process(self, tick):
            frame = self.outputs["video"].new_frame(8, 4)
            if frame is None:
                return
            data = frame.data
            self.outputs["video"].write(frame)
            with pytest.raises(ValueError):
                data.flags.writeable = True
            assert not np.asarray(frame).flags.writeable
            assert frame.__array_interface__["data"][1] is True
            self.refused += 1

    class Digs(KeepsArrays):
        def process(self, tick):
            frame = self.outputs["video"].new_frame(8, 4)
            if frame is None:
                return
            # Under the root array: what owns the pixels hands out no second writable array.
            owner = frame.data.base.base
            assert not np.asarray(owner).flags.writeable
            self.refused += 1

    for handler in (Sneaky, Digs):
        writer = handler(None)
        run_writer(writer, frames=2)
        assert writer.refused == 2


@pytest.mark.parametrize(
    "keep",
    [
        pytest.param(lambda f: [f.data[1:]], id="slice"),
        pytest.param(lambda f: [np.asarray(f)], id="asarray"),
        pytest.param(lambda f: [f.data.reshape(-1)], id="reshape"),
    ],
)
def test_views_alive_at_write_make_it_publish_a_copy(keep):
    before = streamlib.bytes_copied()
    writer = KeepsArrays(keep)
    reader = run_writer(writer)
    # The views wrote into the buffer they kept; the readers got a copy made at write().
    assert writer.published == [9] * 4
    assert [v for _, _, v in reader.got] == [9] * len(reader.got) and reader.got
    assert streamlib.bytes_copied() - before == 4 * 8 * 4 * 4


class Liar(np.ndarray):
    """An array whose array interface claims far more bytes than it has."""

    @property
    def __array_interface__(self):
        interface = dict(super().__array_interface__)
        interface["shape"] = (512, 512, 4)
        return interface


def test_a_written_array_is_read_by_its_own_shape_not_what_it_claims():
    class Writes(StreamHandler):
        def __init__(self, array):
            super().__init__("writer")
            self.outputs["video"] = VideoOutput("video")
            self.array = array

        def process(self, tick):
            self.outputs["video"].write(self.array)

    small = np.full((2, 3, 4), 5, dtype=np.uint8).view(Liar)
    assert small.__array_interface__["shape"] == (512, 512, 4)
    before = streamlib.bytes_copied()
    reader = run_writer(Writes(small), frames=2)
    assert reader.got == [(3, 2, 5)] * len(reader.got) and reader.got
    assert streamlib.bytes_copied() - before == len(reader.got) * 2 * 3 * 4
    # A non-contiguous array is copied through a contiguous one, by its real shape.
    strided = np.full((4, 6, 4), 7, dtype=np.uint8)[::2, ::2]
    assert run_writer(Writes(strided), frames=1).got == [(3, 2, 7)]


def test_an_array_of_another_size_than_the_output_declared_is_refused():
    class Writes(StreamHandler):
        def __init__(self):
            super().__init__("writer")
            self.outputs["video"] = VideoOutput("video", width=8, height=4)

        def process(self, tick):
            self.outputs["video"].write(np.zeros((5, 8, 4), dtype=np.uint8))

    with pytest.raises(streamlib.StreamFailed, match=r"declared 8x4, the array is 8x5"):
        run_writer(Writes(), frames=1)


def run_python(code):
    """Runs `code` in a fresh interpreter (a crash there cannot take the test run with it)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_misaligned_float32_audio_is_copied_as_bytes():
    # In a debug build, reading it as f32 trips Rust's alignment check, which aborts.
    result = run_python(
        """
        import numpy as np
        from streamlib import AudioInput, AudioOutput, StreamHandler, StreamRuntime

        raw = bytearray(1 + 4 * 64 * 2)
        samples = np.frombuffer(raw, dtype="<f4", offset=1, count=128).reshape(64, 2)
        assert not samples.flags.aligned and samples.ctypes.data % 4
        np.copyto(samples, np.linspace(-1, 1, 128, dtype=np.float32).reshape(64, 2))

        class Tone(StreamHandler):
            def __init__(self):
                super().__init__("tone")
                self.outputs["audio"] = AudioOutput("audio")

            def process(self, tick):
                self.outputs["audio"].write(samples)

        class Sum(StreamHandler):
            def __init__(self):
                super().__init__("sum")
                self.inputs["audio"] = AudioInput("audio")
                self.same = []

            def process(self, tick):
                while (b := self.inputs["audio"].recv()) is not None:
                    self.same.append(bool(np.array_equal(b.data, samples)))

        tone, total = Tone(), Sum()
        runtime = StreamRuntime(clock="free")
        runtime.add_stream(tone)
        runtime.add_stream(total)
        runtime.connect(tone.outputs["audio"], total.inputs["audio"])
        runtime.run_sync(frames=5)
        print("same", sum(total.same), len(total.same))
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    same, count = result.stdout.split()[1:]
    assert int(count) >= 4 and same == count, result.stdout


def test_data_is_one_array_per_writable_frame():
    class Touches(KeepsArrays):
        def process(self, tick):
            frame = self.outputs["video"].new_frame(8, 4)
            if frame is None:
                return
            first = frame.data
            for _ in range(1000):
                frame.data[0, 0, 0] = 1
            # One array, however often `data` is read (nothing recorded per access).
            self.published.append(frame.data is first)
            self.outputs["video"].write(frame)

    writer = Touches(None)
    run_writer(writer, frames=3)
    assert writer.published == [True] * 3
