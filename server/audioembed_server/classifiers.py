"""The classifiers a server serves: ``--classifier NAME=PATH`` parsing, loading at start-up, lookup by name.

Each classifier is a head from ``audioembed train`` attached to the server's own Embedder, so its
embeddings come from the same model batches as ``Embed`` traffic. Loading refuses a head trained on other
VGGish weights (or PCA parameters) than the served ones: the library's
:class:`~audioembed.errors.ClassifierMismatchError` names both sha256, and ``serve`` exits as for any other
model that fails to load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioembed.errors import InvalidOptionError
from audioembed_server.proto import embedding_service_pb2 as pb

if TYPE_CHECKING:  # the classifier package (and its training framework) loads only when a server uses it
    from audioembed.classifier import Classifier

ClassifierSpecs = tuple[tuple[str, str], ...]  # (name, path) in the order given
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # safe in logs, metrics labels and shell commands
ENV_SEPARATOR = ","  # AUDIOEMBED_CLASSIFIERS="birds=/m/birds.safetensors,faults=/m/faults.safetensors"
DEFAULT_TOP_K = 5  # a request's top_k of 0 (unset) means this


def parse_specs(texts: Iterable[str], origin: str) -> ClassifierSpecs:
    """``["name=path", ...]`` as (name, path) pairs; ``origin`` (the flag or variable) names a bad one.

    Raises
    ------
    InvalidOptionError
        A spec without ``=``, an empty or unsafe name, or an empty path.
    """
    specs = []
    for text in texts:
        name, sep, path = text.strip().partition("=")
        if not sep or not path.strip():
            raise InvalidOptionError(f"{origin} takes NAME=PATH, got {text!r}")
        specs.append((name.strip(), path.strip()))
    return check_specs(specs)


def parse_env(text: str, origin: str) -> ClassifierSpecs:
    """The value of ``AUDIOEMBED_CLASSIFIERS``: ``name=path`` pairs separated by commas."""
    return parse_specs([part for part in text.split(ENV_SEPARATOR) if part.strip()], origin)


def check_specs(specs: Iterable[Any]) -> ClassifierSpecs:
    """Validate (name, path) pairs: safe unique names, existing files. Returns them as a tuple of tuples."""
    checked: list[tuple[str, str]] = []
    for spec in specs:
        if not isinstance(spec, tuple | list) or len(spec) != 2:
            raise InvalidOptionError(f"a classifier is a (name, path) pair, got {spec!r}")
        name, path = str(spec[0]), str(spec[1])
        if not NAME_PATTERN.fullmatch(name):
            raise InvalidOptionError(
                f"classifier name {name!r} must start with a letter or digit and hold only letters, digits, "
                "'_', '.' and '-'"
            )
        if any(name == seen for seen, _ in checked):
            raise InvalidOptionError(f"classifier name {name!r} is given twice")
        if not Path(path).is_file():
            raise InvalidOptionError(f"classifier {name!r}: file does not exist: {path!r}")
        checked.append((name, path))
    return tuple(checked)


def load_classifiers(specs: ClassifierSpecs, embedder: Any) -> dict[str, Classifier]:
    """Load each classifier file onto the server's ``embedder``.

    Raises
    ------
    ClassifierError
        A file that is not a classifier, or a corrupted one.
    ClassifierMismatchError
        A head trained on other VGGish weights (or PCA parameters) than ``embedder``'s; names both sha256.
    """
    from audioembed.classifier import Classifier, read_classifier

    return {name: Classifier(read_classifier(path), embedder, source=path) for name, path in specs}


def find(classifiers: Mapping[str, Classifier], name: str) -> Classifier:
    """The served classifier called ``name``; else :class:`InvalidOptionError` naming the served ones."""
    if name in classifiers:
        return classifiers[name]
    served = ", ".join(repr(n) for n in sorted(classifiers)) or "none (start the server with --classifier)"
    asked = "no classifier name" if not name else f"unknown classifier {name!r}"
    raise InvalidOptionError(f"{asked}: this server serves {served}")


def check_top_k(top_k: int) -> int:
    """A request's ``top_k``: 0 (unset) means :data:`DEFAULT_TOP_K`."""
    return DEFAULT_TOP_K if top_k == 0 else int(top_k)


def classifier_infos(classifiers: Mapping[str, Classifier]) -> list[pb.ClassifierInfo]:
    """``ClassifierInfo`` messages for ``GetModelInfo``, sorted by name."""
    return [
        pb.ClassifierInfo(
            name=name,
            labels=list(clf.labels),
            multi_label=bool(clf.multi_label),
            vggish_sha256=str(clf.vggish_sha256),
            model=clf.config.model,
            features=clf.config.features,
            pool=clf.config.pool,
            fine_tuned=bool(clf.fine_tuned),
        )
        for name, clf in sorted(classifiers.items())
    ]


def trained_options(clf: Classifier) -> dict[str, Any]:
    """The window options the head was trained with (``hop_seconds``, ``short_clip``), when recorded.

    A request that leaves them unset gets these, so served scores equal those of ``Classifier.load(path)``
    in process, whose own Embedder uses them too.
    """
    recorded = clf.training.get("embedding") or {}
    return {key: recorded[key] for key in ("hop_seconds", "short_clip") if recorded.get(key) is not None}
