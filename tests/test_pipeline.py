"""The Embedder: every input kind, options, cross-input batching, errors per input, threads."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import soundfile as sf

from audioembed import Embedder, EmbeddingResult
from audioembed.errors import AudioDecodeError, InvalidAudioError, InvalidOptionError, WeightsNotFoundError
from audioembed.pipeline import FailedInput
from tests.assertions import assert_same_result
from tests.audio_files import write_tone


def test_result_shapes_dtypes_and_times_for_a_file(embedder, tmp_path):
    path = tmp_path / "clip.wav"
    write_tone(path, seconds=3.5)
    result = embedder.embed(path)
    assert result.num_examples == 3
    assert result.embeddings.dtype == np.float32 and result.embeddings.shape == (3, 128)
    assert result.quantized.dtype == np.uint8 and result.quantized.shape == (3, 128)
    np.testing.assert_allclose(result.timestamps, [0.0, 0.96, 1.92])
    np.testing.assert_allclose(result.end_times, [0.96, 1.92, 2.88])
    assert (result.sample_rate, result.short_clip) == (16000, "none")
    assert result.duration_seconds == pytest.approx(3.5)
    assert np.isfinite(result.embeddings).all()


def test_every_input_kind_gives_the_same_embeddings(embedder, tmp_path):
    path = tmp_path / "clip.wav"
    write_tone(path, seconds=2.0)
    samples, rate = sf.read(path, dtype="int16")
    from_path = embedder.embed(path)
    from_str = embedder.embed(str(path))
    from_bytes = embedder.embed(path.read_bytes())
    with open(path, "rb") as handle:
        from_file = embedder.embed(handle)
    from_array = embedder.embed(samples.astype(np.float64) / 32768.0, rate)
    from_tuple = embedder.embed((samples.astype(np.float64) / 32768.0, rate))
    for other in (from_str, from_bytes, from_file, from_array, from_tuple):
        assert_same_result(other, from_path, rtol=1e-6)


def test_hop_and_short_clip_options(embedder):
    tone = np.sin(np.linspace(0, 2000, 32000))
    assert embedder.embed(tone, 16000, hop_seconds=0.48).num_examples == 3  # starts 0, 0.48, 0.96
    short = tone[:8000]
    padded = embedder.embed(short, 16000)
    assert (padded.num_examples, padded.short_clip) == (1, "pad")
    dropped = embedder.embed(short, 16000, short_clip="drop")
    assert (dropped.num_examples, dropped.short_clip) == (0, "drop")
    assert dropped.embeddings.shape == (0, 128) and dropped.quantized.shape == (0, 128)
    assert dropped.timestamps.shape == (0,)


def test_output_kinds_keep_only_the_requested_matrices(synthetic_weights):
    tone = np.sin(np.linspace(0, 2000, 16000))
    raw = Embedder(synthetic_weights, output="raw").embed(tone, 16000)
    quantized = Embedder(synthetic_weights, output="quantized").embed(tone, 16000)
    assert raw.quantized is None and raw.embeddings is not None
    assert quantized.embeddings is None and quantized.quantized is not None


def test_embed_many_batches_across_inputs_and_keeps_order(synthetic_weights, tmp_path):
    embedder = Embedder(synthetic_weights, batch_size=4)
    batch_sizes: list[int] = []
    embedder._bundle.model.register_forward_hook(lambda module, args, output: batch_sizes.append(len(output)))
    paths = []
    for i, seconds in enumerate([1.0, 2.1, 0.5, 3.2, 1.5, 1.0]):
        paths.append(tmp_path / f"c{i}.wav")
        write_tone(paths[-1], seconds=seconds, frequency=200.0 + 100 * i)
    results = list(embedder.embed_many(paths))
    assert [r.num_examples for r in results] == [1, 2, 1, 3, 1, 1]
    assert batch_sizes == [4, 4, 1]  # 9 examples across 6 inputs: full batches, one remainder
    for path, result in zip(paths, results, strict=True):
        assert_same_result(result, embedder.embed(path))


def test_embed_many_reports_a_bad_input_in_place_and_goes_on(embedder, tmp_path):
    good = tmp_path / "good.wav"
    write_tone(good, seconds=1.0)
    items = [good, b"not audio at all", (np.zeros(16000), 16000), (np.full(100, np.nan), 16000)]
    out = list(embedder.embed_many(items, errors="return"))
    assert isinstance(out[0], EmbeddingResult) and isinstance(out[2], EmbeddingResult)
    assert isinstance(out[1], FailedInput) and isinstance(out[1].error, AudioDecodeError)
    assert out[1].index == 1 and out[1].source == "<16 bytes>"
    assert isinstance(out[3], FailedInput) and isinstance(out[3].error, InvalidAudioError)
    with pytest.raises(AudioDecodeError):
        list(embedder.embed_many(items))


def test_concurrent_calls_from_threads_get_their_own_correct_results(embedder):
    signals = [np.sin(np.linspace(0, 500 * (k + 1), 16000)) for k in range(4)]
    expected = [embedder.embed(s, 16000) for s in signals]
    results: dict[int, EmbeddingResult] = {}

    def work(k: int) -> None:
        results[k] = embedder.embed(signals[k], 16000)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in range(4):
        assert_same_result(results[k], expected[k])


def test_model_info_describes_the_weights(embedder, synthetic_weights):
    import hashlib

    info = embedder.model_info
    assert info.synthetic is True and info.pca_loaded is True
    assert info.weights_sha256 == hashlib.sha256(synthetic_weights.read_bytes()).hexdigest()
    assert (info.sample_rate, info.window_seconds, info.hop_seconds, info.embedding_size) == (
        16000,
        0.96,
        0.96,
        128,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_size": 0}, "batch_size"), ({"hop_seconds": 0.333}, "hop_seconds"), ({"output": "x"}, "output")],
)
def test_bad_constructor_options(synthetic_weights, kwargs, message):
    with pytest.raises(InvalidOptionError, match=message):
        Embedder(synthetic_weights, **kwargs)


def test_missing_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOEMBED_HOME", str(tmp_path))
    monkeypatch.delenv("AUDIOEMBED_WEIGHTS", raising=False)
    with pytest.raises(WeightsNotFoundError, match="audioembed weights download"):
        Embedder()


def test_tuple_input_with_extra_sample_rate_is_refused(embedder):
    with pytest.raises(InvalidOptionError, match="tuple input"):
        embedder.embed((np.zeros(16000), 16000), 16000)


def test_file_object_is_read_not_closed(embedder, tmp_path):
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(16000), 16000, format="WAV")
    buffer.seek(0)
    assert embedder.embed(buffer).num_examples == 1
    assert not buffer.closed


def test_embed_many_raise_yields_the_inputs_before_the_bad_one_first(synthetic_weights, tmp_path):
    embedder = Embedder(synthetic_weights, batch_size=64)  # the good inputs sit in a half-full batch
    items = [(np.sin(np.linspace(0, 900, 16000)), 16000), (np.sin(np.linspace(0, 500, 48000)), 16000)]
    results = embedder.embed_many([*items, b"garbage", items[0]])
    assert [r.num_examples for r in (next(results), next(results))] == [1, 3]
    with pytest.raises(AudioDecodeError):
        next(results)


def test_a_file_longer_than_one_decode_block_equals_the_one_shot_front_end(embedder, tmp_path):
    path = tmp_path / "long.flac"
    samples = write_tone(path, seconds=23.3, rate=44100, channels=2, subtype="PCM_16")  # 3 blocks of 10 s
    streamed = embedder.embed(path)
    decoded, rate = sf.read(path, dtype="int16")
    one_shot = embedder.embed(decoded.astype(np.float64) / 32768.0, rate)
    assert samples.shape[0] == decoded.shape[0] and streamed.num_examples == 24
    assert_same_result(streamed, one_shot, rtol=1e-5)
    assert streamed.duration_seconds == pytest.approx(23.3, abs=1e-4)


def test_decoding_ahead_uses_memory_bounded_by_the_block_not_the_file(tmp_path):
    import tracemalloc

    from audioembed.feeding import input_pieces
    from audioembed.options import EmbedOptions

    def peak_bytes(seconds: float) -> int:
        path = tmp_path / f"{seconds}.wav"
        write_tone(path, seconds=seconds, rate=16000)
        tracemalloc.start()
        try:
            for _ in input_pieces(path, EmbedOptions()):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak_bytes(30.0), peak_bytes(300.0)
    assert long < 1.5 * short  # ten times the audio, about the same peak (one-shot would need 10x)
