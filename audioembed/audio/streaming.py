"""Long audio in bounded memory: a push-based front-end and a block-wise file reader.

:class:`StreamingFrontEnd` carries the resampler's state, the unframed tail of the 16 kHz waveform and
the log-mel frames of an unfinished example across pushes, so everything pushed yields exactly the
examples of :func:`~audioembed.audio.waveform_to_examples` on the whole signal, while holding at most
one block plus one example of state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import IO

import numpy as np

from audioembed.audio.constants import (
    EXAMPLE_HOP_SECONDS,
    EXAMPLE_WINDOW_FRAMES,
    FRAMES_PER_SECOND,
    MAX_CHANNELS,
    MIN_EXAMPLE_SAMPLES,
    NUM_MEL_BANDS,
    SAMPLE_RATE_HZ,
    STFT_HOP_SAMPLES,
    STFT_WINDOW_SAMPLES,
)
from audioembed.audio.decode import open_audio, read_blocks
from audioembed.audio.examples import (
    check_log_mel,
    check_resampler,
    check_short_clip,
    example_starts,
    hop_to_frames,
    peak_abs,
    waveform16k_to_examples,
)
from audioembed.audio.melspec import frame_examples, log_mel_spectrogram, num_frames
from audioembed.audio.resample import StreamingResampler
from audioembed.audio.samples import check_sample_rate, check_samples, to_mono
from audioembed.errors import InvalidAudioError, InvalidInputError, InvalidOptionError

DEFAULT_BLOCK_SECONDS = 10.0  # decode granularity of iter_file_examples: ~7 MB for 44.1 kHz stereo


class StreamingFrontEnd:
    """Incremental :func:`~audioembed.audio.waveform_to_examples`: push blocks, get finished examples.

    Parameters
    ----------
    sample_rate : int
        Rate of the pushed samples (4000..384000 Hz).
    num_channels : int
        Channels of the pushed samples; every block must have this many.
    hop_seconds : float
        Between example starts: a positive multiple of 10 ms.
    resampler : {"reference", "fast"}

    Examples
    --------
    >>> front = StreamingFrontEnd(44100, num_channels=2)
    >>> for block in blocks:                       # doctest: +SKIP
    ...     log_mel, starts = front.push(block)     # [k, 96, 64], [k]
    >>> log_mel, starts = front.finish(short_clip="pad")  # doctest: +SKIP
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        num_channels: int = 1,
        hop_seconds: float = EXAMPLE_HOP_SECONDS,
        resampler: str = "reference",
    ) -> None:
        self.sample_rate = check_sample_rate(sample_rate)
        if (
            isinstance(num_channels, bool)
            or not isinstance(num_channels, (int, np.integer))
            or not 1 <= num_channels <= MAX_CHANNELS
        ):
            raise InvalidAudioError(
                f"num_channels must be an integer in 1..{MAX_CHANNELS}, got {num_channels!r}"
            )
        self.num_channels = int(num_channels)
        self._hop_frames = hop_to_frames(hop_seconds)
        self.hop_seconds = self._hop_frames / FRAMES_PER_SECOND
        self._resampler: StreamingResampler | None = None
        if self.sample_rate != SAMPLE_RATE_HZ:
            self._resampler = StreamingResampler(
                self.sample_rate, SAMPLE_RATE_HZ, method=check_resampler(resampler)
            )
        else:
            check_resampler(resampler)
        self._pending = np.zeros(0)  # 16 kHz samples after the last whole STFT hop: the next frame's start
        self._head: list[np.ndarray] = []  # the first <= 0.975 s at 16 kHz, kept for the "pad" policy
        self._head_samples = 0
        self._frames = np.zeros((0, NUM_MEL_BANDS))  # log-mel frames not yet fully used by examples
        self._frames_offset = 0  # absolute index of self._frames[0]
        self._total_frames = 0  # log-mel frames computed so far
        self._next_example = 0  # index of the next example to emit
        self.samples_pushed = 0  # per channel, at the source rate
        self.short_clip: str | None = None  # the policy that applied, once finished
        # Peak |sample| pushed so far: a sample too large to analyse may surface in a later block's frames
        # (resampler delay, STFT overlap), so the error names the peak of everything pushed.
        self._peak = 0.0
        self._finished = False
        self._failed = False  # a push or finish raised: the state is part-advanced, so refuse further use

    @property
    def duration_seconds(self) -> float:
        """Duration of everything pushed so far, at the source rate."""
        return self.samples_pushed / self.sample_rate

    @property
    def num_examples(self) -> int:
        """Examples emitted so far."""
        return self._next_example

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add a block of samples; return the examples it completed.

        Parameters
        ----------
        samples : np.ndarray [shape=(n,) or (n, num_channels)]
            Float in [-1, 1] or integer PCM, as in :func:`~audioembed.audio.check_samples`; ``n`` may be 0.

        Returns
        -------
        log_mel : np.ndarray [shape=(k, 96, 64)], float64
            Examples completed by this block (often ``k = 0``).
        starts : np.ndarray [shape=(k,)], float64
            Their start times in seconds.

        Raises
        ------
        InvalidAudioError
            A bad block (checked before any state changes: the front-end stays usable), or samples so large
            that the log-mel is out of range or not finite (the front-end is then unusable).
        """
        self._check_open("push")
        block = check_samples(samples, num_channels=self.num_channels, allow_empty=True)
        if block.ndim == 2 and self.num_channels == 1:
            block = block[:, 0]
        self._peak = max(self._peak, peak_abs(block))
        self.samples_pushed += block.shape[0]
        mono = to_mono(block)
        self._failed = True  # until the block is fully consumed
        waveform = self._resampler.process(mono) if self._resampler is not None else mono
        result = self._consume(np.asarray(waveform, dtype=np.float64))
        self._failed = False
        return result

    def finish(self, *, short_clip: str = "pad") -> tuple[np.ndarray, np.ndarray]:
        """Flush the resampler and framing state; return the remaining examples.

        Parameters
        ----------
        short_clip : {"pad", "drop"}
            Applied if the whole stream was shorter than one example (0.975 s).

        Returns
        -------
        log_mel : np.ndarray [shape=(k, 96, 64)], float64
        starts : np.ndarray [shape=(k,)], float64

        Raises
        ------
        InvalidAudioError
            Nothing was pushed, or the samples are so large that the log-mel is out of range or not finite.
        """
        check_short_clip(short_clip)
        self._check_open("finish")
        if self.samples_pushed == 0:
            raise InvalidAudioError("no samples were pushed before finish(): the audio is empty")
        self._finished = True
        tail = self._resampler.flush() if self._resampler is not None else np.zeros(0)
        log_mel, starts = self._consume(np.asarray(tail, dtype=np.float64))
        self.short_clip = "none"
        if self._next_example == 0:
            # Never reached one example, so the head holds the whole 16 kHz waveform.
            head = np.concatenate(self._head) if self._head else np.zeros(0)
            log_mel, starts, self.short_clip = waveform16k_to_examples(
                head, hop_frames=self._hop_frames, short_clip=short_clip, peak=lambda: self._peak
            )
            self._next_example = log_mel.shape[0]
        self._head = []
        return log_mel, starts

    def _check_open(self, what: str) -> None:
        if self._finished:
            raise InvalidInputError(f"{what}() called on a StreamingFrontEnd that has already finished")
        if self._failed:
            raise InvalidInputError(f"{what}() called on a StreamingFrontEnd after an error: start a new one")

    def _consume(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame new 16 kHz samples and cut every example whose 96 frames are now complete."""
        if self._head_samples < MIN_EXAMPLE_SAMPLES:
            kept = waveform[: MIN_EXAMPLE_SAMPLES - self._head_samples]
            self._head.append(kept.copy())
            self._head_samples += kept.shape[0]
        buffer = np.concatenate((self._pending, waveform)) if self._pending.size else waveform
        new_frames = log_mel_spectrogram(buffer)  # (f, 64)
        check_log_mel(new_frames, peak=lambda: self._peak)
        consumed = (
            num_frames(buffer.shape[0], window=STFT_WINDOW_SAMPLES, hop=STFT_HOP_SAMPLES) * STFT_HOP_SAMPLES
        )
        self._pending = buffer[consumed:].copy()  # copy: do not pin the whole block in memory
        self._total_frames += new_frames.shape[0]
        frames = np.concatenate((self._frames, new_frames)) if self._frames.size else new_frames

        first_frame = self._next_example * self._hop_frames
        ready = num_frames(
            self._total_frames - first_frame, window=EXAMPLE_WINDOW_FRAMES, hop=self._hop_frames
        )
        start = first_frame - self._frames_offset
        log_mel = frame_examples(frames[start:], hop_frames=self._hop_frames)[:ready]  # (ready, 96, 64)
        starts = example_starts(self._next_example, ready, hop_frames=self._hop_frames)
        self._next_example += ready

        # Keep only frames the next example can still use (none that precede its start).
        keep_from = min(self._next_example * self._hop_frames, self._total_frames)
        self._frames = frames[keep_from - self._frames_offset :].copy()
        self._frames_offset = keep_from
        return log_mel, starts


def iter_file_examples(
    source: str | os.PathLike | bytes | IO[bytes],
    *,
    block_seconds: float = DEFAULT_BLOCK_SECONDS,
    hop_seconds: float = EXAMPLE_HOP_SECONDS,
    short_clip: str = "pad",
    resampler: str = "reference",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Examples of an encoded file, decoded block by block in bounded memory.

    Parameters
    ----------
    source : path, bytes-like, or binary file object
        Anything :func:`~audioembed.audio.load_audio` decodes except arrays.
    block_seconds : float
        Audio decoded per step (positive); memory grows with it, not with the file's length.
    hop_seconds, short_clip, resampler
        As for :func:`~audioembed.audio.waveform_to_examples`.

    Yields
    ------
    log_mel : np.ndarray [shape=(k, 96, 64)], float64
        ``k ≥ 1``; concatenated, the blocks equal the one-shot result.
    starts : np.ndarray [shape=(k,)], float64

    Raises
    ------
    InvalidOptionError
        A bad option (checked before anything is read), or an array source.
    AudioDecodeError
        The source cannot be opened, or decoding fails part-way; a truncated file is reported after the
        examples of the part that could be read.
    InvalidAudioError
        No samples, or NaN/Inf in a float file.
    """
    if (
        isinstance(block_seconds, bool)
        or not isinstance(block_seconds, (int, float, np.number))
        or not math.isfinite(block_seconds)
        or block_seconds <= 0
    ):
        raise InvalidOptionError(f"block_seconds must be a positive number of seconds, got {block_seconds!r}")
    hop_to_frames(hop_seconds)
    check_short_clip(short_clip)
    check_resampler(resampler)
    if isinstance(source, np.ndarray):
        raise InvalidOptionError("iter_file_examples reads encoded audio; use StreamingFrontEnd for arrays")
    name = repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"
    with open_audio(source) as handle:
        front = StreamingFrontEnd(
            check_sample_rate(handle.samplerate, source=f"of audio {name}"),
            num_channels=handle.channels,
            hop_seconds=hop_seconds,
            resampler=resampler,
        )
        block_frames = max(1, round(float(block_seconds) * handle.samplerate))
        for block in read_blocks(handle, name, block_frames=block_frames):
            log_mel, starts = front.push(block)
            if log_mel.shape[0]:
                yield log_mel, starts
        log_mel, starts = front.finish(short_clip=short_clip)
        if log_mel.shape[0]:
            yield log_mel, starts
