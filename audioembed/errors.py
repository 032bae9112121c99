"""The package's exceptions: one small hierarchy every layer raises from.

Every error a user can cause derives from :class:`AudioEmbedError`, so callers can catch the package's
failures in one clause. Errors caused by bad *input* also derive from the matching builtin
(``ValueError``, ``FileNotFoundError``), so code written against plain Python keeps working. The gRPC
layer maps these classes to status codes in one place; keep that mapping in mind when adding a class:

=========================  ======================
class                      gRPC status
=========================  ======================
InvalidInputError (+subs)  INVALID_ARGUMENT
WeightsError (+subs)       FAILED_PRECONDITION / UNAVAILABLE at start-up
ClassifierError (+subs)    FAILED_PRECONDITION (a classifier that does not fit the served weights)
anything else              INTERNAL (a bug)
=========================  ======================

:class:`MalformedResponseError` is the other direction: raised by the gRPC *client* when a server's answer
does not hold together; it is never mapped to a status.

Messages quote the offending value (``f"... got {value!r}"``) and, where there is one, the fix.
"""

from __future__ import annotations


class AudioEmbedError(Exception):
    """Base class of every error raised on purpose by audioembed."""


class InvalidInputError(AudioEmbedError, ValueError):
    """The caller passed something unusable: audio, an option value, or an array of the wrong shape."""


class AudioDecodeError(InvalidInputError):
    """Bytes or a file could not be decoded as audio (unknown, garbled or truncated container)."""


class InvalidAudioError(InvalidInputError):
    """Decoded samples or a caller's array are unusable: empty, non-finite, bad rate, dtype or rank."""


class InvalidOptionError(InvalidInputError):
    """An option has a value outside its domain (hop size, short-clip policy, resampler name, ...)."""


class ShapeError(InvalidInputError):
    """An array reached a layer or model with a shape it cannot take; the message names both shapes."""


class DatasetError(InvalidInputError):
    """A training or evaluation data set is unusable: empty, one label, too few files, a bad manifest."""


class ClassifierError(AudioEmbedError, ValueError):
    """A classifier file is not one, is corrupted, or does not fit the VGGish weights it is used with."""


class ClassifierMismatchError(ClassifierError):
    """A classifier was trained on other VGGish weights (another sha256) than the ones it is used with."""


class GradientError(AudioEmbedError, RuntimeError):
    """Back-propagation cannot proceed; the message says why and what to do.

    Raised for: backward of a non-scalar without ``gradient``, a second backward through a freed graph,
    backward from a tensor that does not require grad, a hook or ``Function.backward`` returning a gradient
    of the wrong shape or count, an optimizer given no trainable parameters.
    """


class WeightsError(AudioEmbedError):
    """Base class of problems with model weights or PCA parameters."""


class WeightsFormatError(WeightsError, ValueError):
    """A weights file is of an unknown or unsupported format, corrupted, truncated, or has wrong tensors."""


class UnsafePickleError(WeightsFormatError):
    """A ``.pth`` file asked the unpickler for a global outside the allow-list (a code-execution attempt)."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """No weights could be resolved; the message says exactly which command or setting fixes it."""


class WeightsDownloadError(WeightsError):
    """Downloading the official files failed (network, HTTP status, size or checksum mismatch)."""


class WeightsVerificationError(WeightsError):
    """Freshly converted weights did not reproduce the reference smoke-test statistics."""


class MalformedResponseError(AudioEmbedError, ValueError):
    """A service's answer is malformed (wrong byte counts, lengths, enum values, missing or extra items).

    Raised by the gRPC client, not for anything the caller passed: the message names the malformed field
    (``items[2].result.raw``, ``stream part 3``) and its value. A ``ValueError`` like the shape checks it
    replaces, so older ``except ValueError`` handlers still catch it.
    """


class ModelRegistryError(AudioEmbedError):
    """A model name was registered twice, or a registration is malformed (a programming error, not input)."""


class MissingDependencyError(AudioEmbedError, ImportError):
    """An optional feature needs a package that is not installed; the message names the extra to install."""
