"""Waveform → log-mel examples, numerically Google's VGGish front-end. Knows nothing about the model.

Decoding (:func:`load_audio`, :func:`decode_pcm`), down-mix (:func:`to_mono`), resampling to 16 kHz
(:func:`resample`, :class:`StreamingResampler`), log-mel examples with start times
(:func:`waveform_to_examples`, :func:`extract_examples` → :class:`Examples`), and the same in bounded
memory for long audio (:class:`StreamingFrontEnd`, :func:`iter_file_examples`), and the size of a source
before decoding it (:func:`probe` → :class:`AudioInfo`, :func:`expected_examples`). Callers that feed
:class:`StreamingFrontEnd` themselves decode an encoded file in blocks with :func:`open_audio` and
:func:`read_blocks`.
"""

from audioembed.audio.constants import (
    EXAMPLE_HOP_SECONDS,
    EXAMPLE_WINDOW_FRAMES,
    EXAMPLE_WINDOW_SECONDS,
    MAX_SAMPLE_RATE_HZ,
    MIN_EXAMPLE_SECONDS,
    MIN_SAMPLE_RATE_HZ,
    NUM_MEL_BANDS,
    SAMPLE_RATE_HZ,
)
from audioembed.audio.decode import decode_pcm, load_audio, open_audio, read_blocks
from audioembed.audio.examples import (
    RESAMPLER_METHODS,
    SHORT_CLIP_POLICIES,
    Examples,
    extract_examples,
    waveform_to_examples,
)
from audioembed.audio.melspec import log_mel_spectrogram, mel_matrix, stft_magnitude
from audioembed.audio.resample import StreamingResampler, resample
from audioembed.audio.samples import check_sample_rate, check_samples, to_mono
from audioembed.audio.sizing import AudioInfo, expected_examples, probe
from audioembed.audio.streaming import StreamingFrontEnd, iter_file_examples

__all__ = [
    "EXAMPLE_HOP_SECONDS",
    "EXAMPLE_WINDOW_FRAMES",
    "EXAMPLE_WINDOW_SECONDS",
    "MAX_SAMPLE_RATE_HZ",
    "MIN_EXAMPLE_SECONDS",
    "MIN_SAMPLE_RATE_HZ",
    "NUM_MEL_BANDS",
    "RESAMPLER_METHODS",
    "SAMPLE_RATE_HZ",
    "SHORT_CLIP_POLICIES",
    "AudioInfo",
    "Examples",
    "StreamingFrontEnd",
    "StreamingResampler",
    "check_sample_rate",
    "check_samples",
    "decode_pcm",
    "expected_examples",
    "extract_examples",
    "iter_file_examples",
    "load_audio",
    "log_mel_spectrogram",
    "mel_matrix",
    "open_audio",
    "probe",
    "read_blocks",
    "resample",
    "stft_magnitude",
    "to_mono",
    "waveform_to_examples",
]
