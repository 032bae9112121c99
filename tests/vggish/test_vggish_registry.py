"""``create_model("vggish", ...)`` and the top-level registry exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import audioembed
from audioembed.errors import WeightsNotFoundError
from audioembed.vggish import VGGish, load_vggish


def test_top_level_exports_list_and_create() -> None:
    assert "vggish" in audioembed.list_models() and audioembed.list_models("vgg*") == ["vggish"]
    assert {"create_model", "list_models", "register_model"} <= set(audioembed.__all__)
    model = audioembed.create_model("vggish")
    assert isinstance(model, VGGish) and model.training  # fresh: random initial weights, for training


def test_weights_path_loads_any_supported_file(synthetic_weights: Path) -> None:
    model = audioembed.create_model("vggish", weights=synthetic_weights)
    reference = load_vggish(synthetic_weights)
    assert isinstance(model, VGGish) and not model.training
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_pretrained_resolves_the_configured_weights(synthetic_weights: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUDIOEMBED_WEIGHTS", str(synthetic_weights))
    model = audioembed.create_model("vggish", pretrained=True)
    np.testing.assert_array_equal(model.fc2.bias.data, load_vggish(synthetic_weights).fc2.bias.data)


def test_pretrained_without_weights_says_how_to_get_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AUDIOEMBED_WEIGHTS", raising=False)
    monkeypatch.setenv("AUDIOEMBED_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="audioembed weights download"):
        audioembed.create_model("vggish", pretrained=True)
