"""One fuzz worker process: rebuilds cases from their indexes and runs each through every target.

Protocol on stdin/stdout, one line each: the parent sends ``I`` (a case index); the worker answers
``start I`` and then ``done I <json>``. A worker that dies or stalls between the two is a crash or a hang
of case ``I``: that is why each case runs in a separate process from the parent (libsndfile is C).

Outcomes are strings: ``ok``; ``E:<class>`` for the project's own errors (``audioembed.errors``);
``U:<class>: <message>`` for anything else (an untyped exception: a defect); gRPC calls give the status
code name (``OK``, ``INVALID_ARGUMENT``, ...), with ``EmbedBatch`` adding each item's code.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fuzz_inputs
import fuzz_weights
import grpc
import numpy as np
import soundfile
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc

from audioembed import audio
from audioembed.errors import AudioEmbedError

TARGET_TIMEOUT_SECONDS = 20.0  # a target slower than this is a hang
STREAM_CHUNKS = (61, 1000, 4096, 65536)  # chunk sizes an EmbedStream client may pick ...
TINY_CHUNKS = (1, 7)  # ... and, for inputs of at most TINY_INPUT_BYTES, byte by byte
TINY_INPUT_BYTES = 2048
# Seeds are 0.5 s: shorter than one 0.96 s example. Most cases ask for short_clip="drop" (decoding, the
# front-end and the server's request path run in full; the model gets no rows); every PAD_EVERY-th case asks
# for "pad" and runs the model too. The model's input is always a well-formed [n, 96, 64] float32 array,
# and it costs ~50x the rest of a case on a loaded machine: this is what makes 10,000 cases affordable.
PAD_EVERY = 8
RPCS = ("Embed", "EmbedBatch", "EmbedStream")
FULL_GOOD_EVERY = 16  # EmbedBatch: every 16th case's good neighbour is a full clip (runs the model) ...
GOOD_SHORT_SECONDS = 0.5  # ... the others a short clip dropped by policy (decoded and checked, no model)


def outcome(call: Callable[[], Any]) -> tuple[str, float]:
    """Run ``call``; classify how it ended and time it."""
    started = time.perf_counter()
    try:
        call()
        result = "ok"
    except AudioEmbedError as error:
        result = f"E:{type(error).__name__}"
    except grpc.RpcError as error:
        result = error.code().name if hasattr(error, "code") else f"U:RpcError: {error}"
    except Exception as error:  # an untyped exception is exactly what the fuzzer looks for
        tail = traceback.format_exc().strip().splitlines()[-3:]
        result = f"U:{type(error).__name__}: {str(error)[:200]} | {' / '.join(tail)}"
    return result, time.perf_counter() - started


class AudioTargets:
    """``audio.probe``, ``Embedder.embed`` and the three embedding RPCs of a real server."""

    def __init__(self, weights: str, address: str | None, *, rotate: bool = False) -> None:
        from audioembed import Embedder

        self.rotate = rotate
        self.embedder = Embedder(weights, batch_size=8)
        self.stub = None
        if address is not None:
            self.pb = pb
            self.channel = grpc.insecure_channel(address)
            self.stub = pb_grpc.EmbeddingServiceStub(self.channel)
            self.good_full = self._audio(_good_input(1.0))
            self.good_short = self._audio(_good_input(GOOD_SHORT_SECONDS))

    def run(self, index: int, case: Any) -> dict[str, tuple[str, float]]:
        results = {}
        policy = "pad" if index % PAD_EVERY == 0 else "drop"
        self.short_clip = pb.SHORT_CLIP_POLICY_PAD if policy == "pad" else pb.SHORT_CLIP_POLICY_DROP
        if case.pcm is None:
            results["probe"] = outcome(lambda: audio.probe(case.data))
            results["embed"] = outcome(lambda: self.embedder.embed(case.data, short_clip=policy))
        else:
            encoding, rate, channels = case.pcm

            def samples() -> np.ndarray:
                return audio.decode_pcm(case.data, encoding=encoding, sample_rate=rate, channels=channels)

            results["probe"] = outcome(lambda: audio.probe(samples(), sample_rate=rate))
            results["embed"] = outcome(
                lambda: self.embedder.embed(samples(), sample_rate=rate, short_clip=policy)
            )
        if self.stub is not None:
            message = self._audio(case)
            # "rotate": each case through one RPC in turn (a third of the cost: what the long run affords).
            rpcs = RPCS if not self.rotate else (RPCS[index % len(RPCS)],)
            if "Embed" in rpcs:
                results["Embed"] = outcome(
                    lambda: self.stub.Embed(
                        self._request(message, self.short_clip), timeout=TARGET_TIMEOUT_SECONDS
                    )
                )
            if "EmbedBatch" in rpcs:
                results["EmbedBatch"] = self._batch(message, full=index % FULL_GOOD_EVERY == 0)
            if "EmbedStream" in rpcs:
                results["EmbedStream"] = outcome(lambda: list(self._stream(index, case)))
        return results

    def _audio(self, case: Any) -> Any:
        pb = self.pb
        if case.pcm is None:
            return pb.Audio(encoded=case.data)
        encoding, rate, channels = case.pcm
        fmt = pb.PcmFormat(encoding=_pcm_enum(pb, encoding), sample_rate=rate, channels=channels)
        return pb.Audio(pcm=pb.RawPcm(data=case.data, format=fmt))

    def _request(self, message: Any, short_clip: int = 0) -> Any:
        options = self.pb.EmbedOptions(output=self.pb.OUTPUT_KIND_BOTH, short_clip=short_clip)
        return self.pb.EmbedRequest(audio=message, options=options)

    def _batch(self, message: Any, *, full: bool) -> tuple[str, float]:
        """The case beside a good clip: the call and each item must end with a proper status."""
        items: list[str] = []
        good = (
            self._request(self.good_full)
            if full
            else self._request(self.good_short, short_clip=self.pb.SHORT_CLIP_POLICY_DROP)
        )

        def call() -> None:
            request = self.pb.EmbedBatchRequest(items=[self._request(message, self.short_clip), good])
            response = self.stub.EmbedBatch(request, timeout=TARGET_TIMEOUT_SECONDS)
            for item in response.items:
                code = item.error.code if item.HasField("error") else 0
                items.append(_code_name(code))

        result, seconds = outcome(call)
        if result == "ok":
            result = f"OK[{','.join(items)}]"
            if len(items) != 2 or items[1] != "OK":  # the good clip must not suffer from its neighbour
                result = f"U:good item failed beside a bad one: {result}"
        return result, seconds

    def _stream(self, index: int, case: Any) -> Iterator[Any]:
        pb = self.pb
        options = pb.EmbedOptions(output=pb.OUTPUT_KIND_BOTH, short_clip=self.short_clip)
        if case.pcm is None:
            config = pb.StreamConfig(encoded=True, options=options)
        else:
            encoding, rate, channels = case.pcm
            fmt = pb.PcmFormat(encoding=_pcm_enum(pb, encoding), sample_rate=rate, channels=channels)
            config = pb.StreamConfig(pcm=fmt, options=options)
        sizes = STREAM_CHUNKS + (TINY_CHUNKS if len(case.data) <= TINY_INPUT_BYTES else ())
        size = sizes[index % len(sizes)]

        def requests() -> Iterator[Any]:
            yield pb.EmbedStreamRequest(config=config)
            for start in range(0, len(case.data), size):
                yield pb.EmbedStreamRequest(chunk=case.data[start : start + size])

        return self.stub.EmbedStream(requests(), timeout=TARGET_TIMEOUT_SECONDS)


class WeightTargets:
    """Every weights reader and loader on a (corrupted or hostile) file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.folder = Path(tempfile.mkdtemp(prefix="fuzz-weights-"))

    def run(self, index: int, case: Any) -> dict[str, tuple[str, float]]:
        from audioembed.vggish.weights import build_vggish, load_postprocessor, read_weights

        path = self.folder / case.file_name
        path.write_bytes(case.data)

        def read_and_load() -> None:
            weights = read_weights(path)
            if weights.has_model:
                build_vggish(weights)
            if weights.pca is not None:
                load_postprocessor(path)

        results = {"read": outcome(read_and_load)}
        if self.marker.exists():  # a payload ran: the worst possible outcome
            results["payload"] = ("U:PayloadRan: the marker file exists", 0.0)
            self.marker.unlink()
        path.unlink()
        return results


class SelfTestTargets:
    """Known outcomes that prove the parent counts them: 0 ok, 1 untyped, 2 SIGSEGV, 3 a hang."""

    def run(self, index: int, case: Any) -> dict[str, tuple[str, float]]:
        if index == 2:
            os.kill(os.getpid(), signal.SIGSEGV)
        if index == 3:
            time.sleep(3600)
        if index == 1:
            return {"selftest": outcome(lambda: int("not a number"))}
        return {"selftest": outcome(lambda: None)}


def _good_input(seconds: float) -> Any:
    """A clean 16 kHz 16-bit WAV of ``seconds``."""
    buffer = io.BytesIO()
    t = np.arange(round(seconds * 16000)) / 16000
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 220.0 * t), 16000, format="WAV", subtype="PCM_16")
    return fuzz_inputs.FuzzInput(f"good {seconds:g} s", buffer.getvalue())


def _pcm_enum(pb: Any, encoding: str) -> int:
    return pb.PCM_ENCODING_S16LE if encoding == "s16le" else pb.PCM_ENCODING_F32LE


def _code_name(code: int) -> str:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return f"U:unknown code {code}"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("audio", "weights", "selftest"), required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--weights", help="weights the Embedder loads (audio mode)")
    parser.add_argument("--address", help="a running server (audio mode); none: in-process targets only")
    parser.add_argument("--rotate-rpcs", action="store_true", help="each case through one RPC, in turn")
    parser.add_argument("--marker", type=Path, help="the file a hostile payload would create (weights mode)")
    args = parser.parse_args(argv)
    if args.mode == "audio":
        targets: Any = AudioTargets(args.weights, args.address, rotate=args.rotate_rpcs)
        make = fuzz_inputs.case
    elif args.mode == "weights":
        targets = WeightTargets(args.marker)
        make = functools.partial(fuzz_weights.case, marker=args.marker)
    else:
        targets = SelfTestTargets()

        def make(seed: int, index: int) -> Any:
            return fuzz_inputs.FuzzInput(f"selftest {index}", b"")

    print("ready", flush=True)
    for line in sys.stdin:
        index = int(line)
        case = make(args.seed, index)
        print(f"start {index}", flush=True)
        results = targets.run(index, case)
        report = {"i": index, "label": case.label, "results": results, "rss": _rss_bytes()}
        print(f"done {index} {json.dumps(report)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
