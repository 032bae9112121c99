"""The reference front-end's constants, in one block (``vggish_params.py`` + ``mel_features.py``).

Every derived value is computed from the base ones and checked to divide exactly, so a change to a base
constant that breaks an assumption fails at import time instead of silently shifting frames.
"""

from __future__ import annotations

# --- Base constants (the reference's values; names carry units) -----------------------------------
SAMPLE_RATE_HZ = 16000  # the model's input rate: everything is resampled to this
STFT_WINDOW_SECONDS = 0.025  # 25 ms analysis window ...
STFT_HOP_SECONDS = 0.010  # ... every 10 ms: one log-mel frame per hop
NUM_MEL_BANDS = 64  # mel bands per frame (the example's width)
MEL_MIN_HZ = 125.0  # lower edge of the lowest mel triangle
MEL_MAX_HZ = 7500.0  # upper edge of the highest mel triangle
LOG_OFFSET = 0.01  # added to mel energies before the log, so silence gives log(0.01), not -inf
EXAMPLE_WINDOW_SECONDS = 0.96  # one example = 96 frames
EXAMPLE_HOP_SECONDS = 0.96  # default hop between examples: non-overlapping, like the reference
MEL_BREAK_HZ = 700.0  # HTK mel scale: mel = MEL_HIGH_FREQUENCY_Q * ln(1 + f / MEL_BREAK_HZ)
MEL_HIGH_FREQUENCY_Q = 1127.0

# --- Limits on input (not the reference's; they turn nonsense into clear errors) --------------------
# The lowest rate accepted. DESIGN.md promises 8 kHz (telephone audio); 4 kHz leaves headroom. Lower rates
# are not audio for this model (no content above 2 kHz) and make upsampling to 16 kHz a CPU and memory
# bomb: a 450-byte WAV at 1 Hz would become 208 examples after seconds of work.
MIN_SAMPLE_RATE_HZ = 4000
MAX_SAMPLE_RATE_HZ = 384000  # the highest rate any real converter produces
# Largest |sample| the front-end analyses. Far above anything meant as audio (even unscaled int32 PCM
# passed as floats stays below it), yet it keeps the log-mel small and finite: samples near 1e307
# overflow the FFT to inf/NaN, and ~1e300 gives log-mel ~690, garbage that must not reach the model.
MAX_ABS_SAMPLE = 2.0**31
MAX_CHANNELS = 1024  # libsndfile's own limit: more "channels" than this is a transposed array


# --- Derived (checked) ------------------------------------------------------------------------------
def _whole(value: float, what: str) -> int:
    """``value`` as an int, refusing anything that is not a whole number (up to float rounding)."""
    nearest = round(value)
    if abs(value - nearest) > 1e-9 * max(1.0, abs(value)):
        raise ImportError(f"front-end constants: {what} must be a whole number, got {value!r}")
    return nearest


STFT_WINDOW_SAMPLES = _whole(SAMPLE_RATE_HZ * STFT_WINDOW_SECONDS, "window in samples")  # 400
STFT_HOP_SAMPLES = _whole(SAMPLE_RATE_HZ * STFT_HOP_SECONDS, "hop in samples")  # 160
FFT_SIZE = 1 << (STFT_WINDOW_SAMPLES - 1).bit_length()  # 512: the next power of two >= the window
NUM_FFT_BINS = FFT_SIZE // 2 + 1  # 257 rfft bins, DC to Nyquist
FRAMES_PER_SECOND = _whole(1.0 / STFT_HOP_SECONDS, "frames per second")  # 100
EXAMPLE_WINDOW_FRAMES = _whole(EXAMPLE_WINDOW_SECONDS * FRAMES_PER_SECOND, "example window in frames")  # 96
EXAMPLE_HOP_FRAMES = _whole(EXAMPLE_HOP_SECONDS * FRAMES_PER_SECOND, "example hop in frames")  # 96
# The shortest waveform that yields one example: 96 windows of 400 samples, 160 apart (0.975 s).
MIN_EXAMPLE_SAMPLES = STFT_WINDOW_SAMPLES + (EXAMPLE_WINDOW_FRAMES - 1) * STFT_HOP_SAMPLES  # 15600
MIN_EXAMPLE_SECONDS = MIN_EXAMPLE_SAMPLES / SAMPLE_RATE_HZ  # 0.975
