"""ExampleBatcher: full batches across inputs, rows back to their owners, inputs released in order."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed.batching import ExampleBatcher
from audioembed.errors import InvalidInputError


class RecordingModel:
    """A real, tiny 'model': row i's output is its input's mean (so rows can be traced to their owner)."""

    def __init__(self, *, quantized: bool = True) -> None:
        self.batch_sizes: list[int] = []
        self.quantized = quantized

    def __call__(self, log_mel: np.ndarray):
        self.batch_sizes.append(log_mel.shape[0])
        raw = np.repeat(log_mel.mean(axis=(1, 2))[:, None], 128, axis=1).astype(np.float32)
        return raw, (raw.astype(np.uint8) if self.quantized else None)


def examples(value: float, count: int) -> np.ndarray:
    return np.full((count, 96, 64), value, dtype=np.float32)


def run(batcher: ExampleBatcher, inputs: list[tuple[str, np.ndarray]]):
    out = []
    for tag, log_mel in inputs:
        out += list(batcher.add(tag, log_mel))
    return out + list(batcher.flush())


def test_batches_are_full_across_inputs_and_rows_return_to_their_inputs():
    model = RecordingModel()
    counts = [3, 1, 0, 7, 2, 5]
    inputs = [(f"clip{i}", examples(float(i), n)) for i, n in enumerate(counts)]
    done = run(ExampleBatcher(model, batch_size=4, with_quantized=True), inputs)
    assert [d.tag for d in done] == [tag for tag, _ in inputs]
    assert model.batch_sizes == [4, 4, 4, 4, 2]  # 18 rows: only the final flush is short
    for (i, n), d in zip(enumerate(counts), done, strict=True):
        assert d.raw.shape == (n, 128) and d.raw.dtype == np.float32
        assert d.quantized.shape == (n, 128) and d.quantized.dtype == np.uint8
        np.testing.assert_array_equal(d.raw, float(i))


def test_inputs_are_released_as_soon_as_complete_not_at_the_end():
    batcher = ExampleBatcher(RecordingModel(), batch_size=2, with_quantized=True)
    assert [d.tag for d in batcher.add("a", examples(1, 2))] == ["a"]
    assert list(batcher.add("b", examples(2, 1))) == []  # 1 row queued: not a full batch yet
    assert batcher.queued_rows == 1
    assert [d.tag for d in batcher.add("c", examples(3, 1))] == ["b", "c"]


def test_an_input_without_rows_waits_for_earlier_inputs_to_keep_order():
    batcher = ExampleBatcher(RecordingModel(), batch_size=4, with_quantized=True)
    assert list(batcher.add("long", examples(1, 3))) == []
    assert list(batcher.add("empty", examples(0, 0))) == []
    done = list(batcher.flush())
    assert [d.tag for d in done] == ["long", "empty"]
    assert done[1].raw.shape == (0, 128) and done[1].quantized.shape == (0, 128)


def test_without_pca_quantized_is_none_even_for_empty_inputs():
    done = run(
        ExampleBatcher(RecordingModel(quantized=False), batch_size=4, with_quantized=False),
        [("x", examples(1, 0)), ("y", examples(1, 5))],
    )
    assert all(d.quantized is None for d in done)


def test_model_disagreeing_about_quantized_output_is_an_error():
    batcher = ExampleBatcher(RecordingModel(quantized=False), batch_size=1, with_quantized=True)
    with pytest.raises(RuntimeError, match="quantized=False"):
        list(batcher.add("x", examples(1, 1)))


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="got 0"):
        ExampleBatcher(RecordingModel(), batch_size=0, with_quantized=True)


def test_an_input_may_arrive_in_blocks_and_is_released_only_when_finished():
    model = RecordingModel()
    batcher = ExampleBatcher(model, batch_size=4, with_quantized=True)
    long_input = batcher.start("long")
    assert list(batcher.extend(long_input, examples(1.0, 3))) == []
    assert list(batcher.extend(long_input, examples(1.0, 3))) == []  # a batch ran, but "long" is not finished
    assert model.batch_sizes == [4]
    done = [*batcher.finish(long_input), *batcher.add("next", examples(2.0, 2))]
    assert [d.tag for d in done] == ["long", "next"]
    assert done[0].raw.shape == (6, 128) and done[1].raw.shape == (2, 128)
    with pytest.raises(ValueError, match="already finished"):
        list(batcher.extend(long_input, examples(1.0, 1)))


class RefusingModel(RecordingModel):
    """Refuses (like the postprocessor) any batch holding a NaN row."""

    def __call__(self, log_mel):
        if np.isnan(log_mel).any():
            raise InvalidInputError("non-finite embedding values")
        return super().__call__(log_mel)


def test_one_refused_input_does_not_fail_the_others_in_its_batch():
    model = RefusingModel()
    inputs = [("good1", examples(1.0, 2)), ("bad", examples(np.nan, 1)), ("good2", examples(3.0, 1))]
    done = run(ExampleBatcher(model, batch_size=4, with_quantized=True), inputs)
    assert [d.tag for d in done] == ["good1", "bad", "good2"]
    assert done[0].error is None and done[2].error is None
    np.testing.assert_array_equal(done[2].raw, 3.0)
    assert isinstance(done[1].error, InvalidInputError) and done[1].raw.shape == (0, 128)
