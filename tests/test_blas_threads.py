"""Every BLAS call of the library's stages runs on one BLAS thread, whatever the process default.

Each test raises the process's BLAS threads to 2 (OpenBLAS's default on a 2-CPU machine), then records the
live thread count, as threadpoolctl reads it from the loaded BLAS, from inside the stage's code just
before its matrix product: the mel projection, the polyphase resampler, the PCA postprocessor, on the
public entry points (the audio API, the streaming front-end the server's EmbedStream feeds, the Embedder).
Each hook puts the count back to 2 after reading it: the library pins the count rather than restoring it,
so without that a site that forgot its limit would pass on the strength of an earlier site's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from audioembed import audio, blas
from audioembed.audio import _polyphase, melspec

RATE = 44100  # resampled to 16 kHz through the polyphase bank


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def two_threads():
    """The process default at 2 BLAS threads for the test; yields the live counts seen inside the hooks."""
    with threadpool_limits(limits=2, user_api="blas"):
        if max(_blas_threads(), default=0) < 2:
            pytest.skip("this BLAS cannot run 2 threads here, so a limit of 1 is not observable")
        yield


@pytest.fixture
def seen(monkeypatch, two_threads) -> dict[str, list[list[int]]]:
    """Hooks in the front-end's two BLAS sites; maps each site to the thread counts seen on each call."""
    record: dict[str, list[list[int]]] = {"mel": [], "resample": []}
    mel_matrix = melspec._default_mel_matrix
    interpolate = _polyphase.interpolate_polyphase

    def hooked_mel_matrix():  # called right where the projection multiplies by it
        record["mel"].append(_read_and_reset())
        return mel_matrix()

    def hooked_interpolate(*args, **kwargs):
        record["resample"].append(_read_and_reset())
        return interpolate(*args, **kwargs)

    monkeypatch.setattr(melspec, "_default_mel_matrix", hooked_mel_matrix)
    monkeypatch.setattr(_polyphase, "interpolate_polyphase", hooked_interpolate)
    return record


def _read_and_reset() -> list[int]:
    """The live counts, then the process default (2) again, so the next site must set its own limit."""
    counts = _blas_threads()
    threadpool_limits(limits=2, user_api="blas")  # undone by the two_threads fixture's context
    return counts


def _tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * 440.0 * t)


def _assert_single(record: dict[str, list[list[int]]], *sites: str) -> None:
    for site in sites:
        assert record[site], f"the {site} hook never ran: the test would prove nothing"
        assert all(counts == [1] * len(counts) for counts in record[site]), (site, record[site])


def test_the_one_shot_front_end_runs_blas_on_one_thread(seen):
    examples = audio.extract_examples(_tone(2.0), sample_rate=RATE)
    assert examples.log_mel.shape[0] == 2
    _assert_single(seen, "mel", "resample")


def test_the_low_level_audio_functions_run_blas_on_one_thread(seen):
    samples = audio.resample(_tone(1.0), RATE, audio.SAMPLE_RATE_HZ)
    audio.log_mel_spectrogram(samples)
    _assert_single(seen, "mel", "resample")


def test_the_streaming_front_end_runs_blas_on_one_thread(seen):
    # What the server's EmbedStream handler drives directly, outside any Embedder call.
    front = audio.StreamingFrontEnd(RATE, num_channels=1)
    for block in np.array_split(_tone(3.0), 4):
        front.push(block)
    front.finish(short_clip="pad")
    _assert_single(seen, "mel", "resample")


def test_the_embedder_runs_its_postprocessor_on_one_blas_thread(seen, embedder, monkeypatch):
    bundle = embedder._bundle
    postprocess = bundle.postprocessor
    record: list[list[int]] = []

    def hooked(raw):
        record.append(_read_and_reset())
        return postprocess(raw)

    monkeypatch.setattr(bundle, "postprocessor", hooked)
    result = embedder.embed(_tone(2.0), RATE)
    assert result.quantized is not None and record and all(c == [1] * len(c) for c in record), record
    _assert_single(seen, "mel", "resample")


def test_a_library_already_at_the_limit_is_left_alone(monkeypatch):
    # A server limits BLAS to 1 for good; then no stage should call into OpenBLAS to set it again.
    with threadpool_limits(limits=1, user_api="blas"):
        for controller in blas._controllers():
            monkeypatch.setattr(controller, "set_num_threads", _refuse)
        with blas.blas_threads(1):
            assert _blas_threads() == [1] * len(_blas_threads())


def _refuse(num_threads: int) -> None:
    raise AssertionError(f"set_num_threads({num_threads}) called although the count already is 1")


_SERVER_PROCESS = """
import json, sys
import numpy as np
from threadpoolctl import threadpool_info
from audioembed_server import EmbeddingClient, ServerConfig, create_server

def counts():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

before = counts()
server, port = create_server(ServerConfig(host="127.0.0.1", port=0, weights=sys.argv[1]))
with EmbeddingClient(f"127.0.0.1:{port}", timeout=60) as client:
    for _ in range(600):
        if client.health() == "SERVING":
            break
        import time; time.sleep(0.1)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(44100 * 2) / 44100)
    examples = client.embed(tone, 44100).num_examples
server.stop()
print(json.dumps([before, counts(), examples]))
"""


def test_a_server_process_runs_blas_single_threaded_without_a_limit_of_its_own(synthetic_weights):
    # A fresh interpreter at OpenBLAS's default: the pin is process-wide and would leak into other tests.
    # `serve` sets no limit of its own any more; the library's stages pin the count.
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "server"), env.get("PYTHONPATH", "")])
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    completed = subprocess.run(
        [sys.executable, "-c", _SERVER_PROCESS, str(synthetic_weights)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    before, after, examples = json.loads(completed.stdout.strip().splitlines()[-1])
    if len(os.sched_getaffinity(0)) > 1:
        assert max(before) > 1, before  # otherwise this test would show nothing
    assert examples == 2 and after and set(after) == {1}, (before, after)


@pytest.mark.skipif(
    not any(i.get("internal_api") == "openblas" for i in threadpool_info()) or os.uname().machine != "x86_64",
    reason="names OpenBLAS's x86-64 kernels",
)
@pytest.mark.parametrize("coretype", ["Haswell", "Sandybridge"])  # AVX2 / AVX: safe on any x86-64 here
def test_blas_architecture_names_the_kernels_openblas_was_told_to_run(coretype: str) -> None:
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
    code = "from audioembed.blas import blas_architecture; print(blas_architecture())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == coretype
