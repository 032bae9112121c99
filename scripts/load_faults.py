"""Load and faults against real server processes: many clients, SIGTERM under load, token and TLS misuse.

    python scripts/load_faults.py                         # 16 clients x 500 requests, 3 SIGTERMs, misuse
    python scripts/load_faults.py --requests 50 --json report.json

1. **Load**: ``--clients`` threads each send ``--requests`` mixed calls (Embed of WAV/FLAC/OGG/MP3
   and raw PCM, EmbedBatch with a bad item, EmbedStream encoded and PCM, GetModelInfo, garbage) to a
   server with a small queue. Every call must end with the status its kind allows (good: OK, or
   RESOURCE_EXHAUSTED, the queue's refusal by design; bad: INVALID_ARGUMENT); none may be lost (no other
   status, no exception, no timeout); the server's RSS is sampled and must stay flat after warm-up.
2. **SIGTERM under load**, three times: 16 clients keep calling; the server gets SIGTERM. It must exit 0
   within its grace period; every call it accepted (each has a ``request`` line in its log) must have been
   answered OK and received by its client; calls after the door closed get UNAVAILABLE and nothing else.
3. **Token and TLS misuse**: missing, wrong, malformed and oversized tokens get UNAUTHENTICATED; plaintext
   to a TLS port, an untrusted certificate and TLS to a plaintext port fail cleanly (UNAVAILABLE); the
   metrics show no example embedded and no model batch run for any of it; the server keeps serving.

Exits 1 if anything is off. Counts and times depend on the machine; the criteria do not.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "server"), str(ROOT / "tests" / "fuzz")]

import grpc  # noqa: E402 - after the path set just above
from audioembed_server.proto import embedding_service_pb2 as pb  # noqa: E402
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc  # noqa: E402
from fuzz_runner import Server  # noqa: E402

CALL_TIMEOUT_SECONDS = 120.0  # generous: a lost call shows up as DEADLINE_EXCEEDED, not as a stuck script
RSS_GROWTH_LIMIT = 64 * 2**20  # bytes the server may grow between warm-up and the end of the load
GRACE_SECONDS = 30.0  # generous: on a loaded machine one model batch has taken 7 s
EXIT_SLACK_SECONDS = 3.0  # process teardown after the grace period (interpreter exit, thread joins)
SIGTERM_AFTER_SECONDS = 3.0  # load runs this long before each SIGTERM
GOOD = frozenset({"OK", "RESOURCE_EXHAUSTED"})


def clips() -> dict[str, bytes]:
    """One-second test clips in several containers (libsndfile writes them)."""
    import io

    import numpy as np
    import soundfile

    out = {}
    for name, fmt, subtype, rate in (
        ("wav", "WAV", "PCM_16", 16000),
        ("flac", "FLAC", "PCM_16", 22050),
        ("ogg", "OGG", "VORBIS", 16000),
        ("mp3", "MP3", "MPEG_LAYER_III", 16000),
    ):
        t = np.arange(rate) / rate
        buffer = io.BytesIO()
        soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 330.0 * t), rate, format=fmt, subtype=subtype)
        out[name] = buffer.getvalue()
    buffer = io.BytesIO()
    t = np.arange(8000) / 16000
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 330.0 * t), 16000, format="WAV", subtype="PCM_16")
    out["short"] = buffer.getvalue()  # 0.5 s: with short_clip=drop, decoded and checked, no model work
    t = np.arange(8000) / 16000  # 0.5 s, like "short"
    out["pcm"] = (np.round(0.3 * np.sin(2 * np.pi * 330.0 * t) * 32767)).astype("<i2").tobytes()
    return out


class Caller:
    """Builds and sends the mixed calls; returns ``(kind, expected statuses, status)`` per call."""

    def __init__(self, stub: pb_grpc.EmbeddingServiceStub, audio: dict[str, bytes], metadata=()) -> None:
        self.stub, self.audio, self.metadata = stub, audio, tuple(metadata)
        pcm_format = pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=16000, channels=1)
        self.pcm = pb.Audio(pcm=pb.RawPcm(data=audio["pcm"], format=pcm_format))
        self.pcm_format = pcm_format
        self.drop = pb.EmbedOptions(short_clip=pb.SHORT_CLIP_POLICY_DROP)

    def call(self, kind: str, n: int) -> str:
        """Send one call of ``kind``; its final status name (client-side exceptions propagate)."""
        try:
            getattr(self, f"_{kind}")(n)
            return "OK"
        except grpc.RpcError as error:
            dropped = "Cancelling all calls" in (error.details() or "")
            if error.code() == grpc.StatusCode.UNAVAILABLE and dropped:
                return "CANCELLED_AT_SHUTDOWN"  # accepted, then dropped by a shutdown: not a refusal
            return error.code().name

    def _embed(self, n: int) -> None:
        name = ("wav", "flac", "ogg", "mp3")[n % 4]
        response = self.stub.Embed(
            pb.EmbedRequest(audio=pb.Audio(encoded=self.audio[name])), timeout=CALL_TIMEOUT_SECONDS,
            metadata=self.metadata,
        )  # fmt: skip
        if response.result.num_examples != 1:
            raise AssertionError(f"a 1 s {name} clip gave {response.result.num_examples} examples")

    def _short(self, n: int) -> None:
        options = pb.EmbedOptions(short_clip=pb.SHORT_CLIP_POLICY_DROP)
        response = self.stub.Embed(
            pb.EmbedRequest(audio=pb.Audio(encoded=self.audio["short"]), options=options),
            timeout=CALL_TIMEOUT_SECONDS, metadata=self.metadata,
        )  # fmt: skip
        if response.result.num_examples != 0:
            raise AssertionError(f"a dropped 0.5 s clip gave {response.result.num_examples} examples")

    def _embed_pcm(self, n: int) -> None:
        request = pb.EmbedRequest(audio=self.pcm, options=self.drop)
        self.stub.Embed(request, timeout=CALL_TIMEOUT_SECONDS, metadata=self.metadata)

    def _batch(self, n: int) -> None:
        items = [
            pb.EmbedRequest(audio=self.pcm, options=self.drop),
            pb.EmbedRequest(audio=pb.Audio(encoded=self.audio["short"]), options=self.drop),
            pb.EmbedRequest(audio=pb.Audio(encoded=b"RIFF-not-really")),
        ]
        response = self.stub.EmbedBatch(
            pb.EmbedBatchRequest(items=items), timeout=CALL_TIMEOUT_SECONDS, metadata=self.metadata
        )
        codes = [
            grpc.StatusCode.OK.value[0] if not i.HasField("error") else i.error.code for i in response.items
        ]
        if codes[2] != grpc.StatusCode.INVALID_ARGUMENT.value[0] or any(
            c not in (0, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]) for c in codes[:2]
        ):
            raise AssertionError(f"EmbedBatch item codes {codes}")

    def _stream(self, n: int) -> None:
        if n % 2:
            config = pb.StreamConfig(encoded=True, options=self.drop)
            data = self.audio["short"]
        else:
            config = pb.StreamConfig(pcm=self.pcm_format, options=self.drop)
            data = self.audio["pcm"]

        def requests():
            yield pb.EmbedStreamRequest(config=config)
            for start in range(0, len(data), 4096):
                yield pb.EmbedStreamRequest(chunk=data[start : start + 4096])

        responses = list(
            self.stub.EmbedStream(requests(), timeout=CALL_TIMEOUT_SECONDS, metadata=self.metadata)
        )
        if not responses or not responses[-1].final:
            raise AssertionError("EmbedStream ended without a final response")

    def _info(self, n: int) -> None:
        self.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=CALL_TIMEOUT_SECONDS, metadata=self.metadata)

    def _garbage(self, n: int) -> None:
        data = os.urandom(64 + n % 300)
        self.stub.Embed(
            pb.EmbedRequest(audio=pb.Audio(encoded=data)),
            timeout=CALL_TIMEOUT_SECONDS,
            metadata=self.metadata,
        )


# Per 20 calls, one 1 s clip is embedded by the model (WAV, FLAC, OGG, MP3 in turn); the other calls carry
# 0.5 s clips with short_clip="drop": decoded, resampled and checked by every RPC path, no model rows. On a
# 2-core machine shared with other jobs the model ran ~1 example/s under load; more would not fit a run.
MIX = ("embed",) + ("embed_pcm",) * 3 + ("batch",) * 3 + ("stream",) * 3 + ("short",) * 6
MIX += ("info",) * 2 + ("garbage",) * 2
EXPECTED = {kind: GOOD for kind in MIX} | {"garbage": frozenset({"INVALID_ARGUMENT"})}


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- 1. load --------------------------------------------------------------------------------------


def run_load(args: argparse.Namespace, folder: Path, weights: Path, audio: dict[str, bytes]) -> dict:
    queue = ("--max-batch-examples", "4", "--max-queue-examples", "8")  # small: RESOURCE_EXHAUSTED can happen
    server = Server(weights, folder / "load.log", *queue, "--max-concurrent-rpcs", "64")
    counts: collections.Counter = collections.Counter()
    unexpected: list[str] = []
    lock = threading.Lock()
    samples: list[tuple[int, int]] = []  # (calls done, server RSS)
    done = threading.Event()

    def client(k: int) -> None:
        with grpc.insecure_channel(server.address) as channel:
            caller = Caller(pb_grpc.EmbeddingServiceStub(channel), audio)
            for n in range(args.requests):
                kind = MIX[(k * 7 + n) % len(MIX)]  # each client cycles through the whole mix
                try:
                    status = caller.call(kind, n)
                except Exception as error:  # lost: not a status at all
                    status = f"LOST:{type(error).__name__}: {error}"
                with lock:
                    counts[(kind, status)] += 1
                    if status not in EXPECTED[kind]:
                        unexpected.append(f"{kind}: {status}")

    def sample() -> None:
        while not done.wait(0.5):
            with lock:
                samples.append((sum(counts.values()), _rss(server.process.pid)))

    started = time.monotonic()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    seconds = time.monotonic() - started
    end_rss = _rss(server.process.pid)
    serving = server.wait_serving(timeout=30)
    exit_status = server.stop()
    total = args.clients * args.requests
    warm = next(
        (rss for calls, rss in samples if calls >= total // 10), samples[0][1] if samples else end_rss
    )
    return {
        "calls": total,
        "answered": sum(counts.values()),
        "seconds": round(seconds, 1),
        "statuses": {f"{kind} {status}": n for (kind, status), n in sorted(counts.items())},
        "unexpected": unexpected[:20],
        "unexpected_count": len(unexpected),
        "rss_mib": {
            "after_warmup": round(warm / 2**20),
            "max": round(max(r for _, r in samples) / 2**20) if samples else None,
            "end": round(end_rss / 2**20),
        },
        "rss_growth_mib": round((end_rss - warm) / 2**20, 1),
        "serving_at_end": serving,
        "exit_status": exit_status,
    }


# --- 2. SIGTERM under load ------------------------------------------------------------------------


def run_sigterm(
    args: argparse.Namespace, folder: Path, weights: Path, audio: dict[str, bytes], round_: int
) -> dict:
    log_path = folder / f"sigterm-{round_}.log"
    server = Server(weights, log_path, "--grace-seconds", str(GRACE_SECONDS), "--log-format", "json")
    client_ok: collections.Counter = collections.Counter()
    client_statuses: collections.Counter = collections.Counter()
    lost: list[str] = []
    lock = threading.Lock()
    kinds = [kind for kind in MIX if kind != "garbage"]
    method = {  # the method each kind of call uses, as the server's log names it
        "embed": "Embed",
        "embed_pcm": "Embed",
        "short": "Embed",
        "batch": "EmbedBatch",
        "stream": "EmbedStream",
        "info": "GetModelInfo",
    }

    def client(k: int) -> None:
        with grpc.insecure_channel(server.address) as channel:
            caller = Caller(pb_grpc.EmbeddingServiceStub(channel), audio)
            n = 0
            while True:
                kind = kinds[(k * 3 + n) % len(kinds)]
                try:
                    status = caller.call(kind, n)
                except Exception as error:
                    status = f"LOST:{type(error).__name__}: {error}"
                with lock:
                    client_statuses[status] += 1
                    if status == "OK":
                        client_ok[method[kind]] += 1
                    elif status not in ("RESOURCE_EXHAUSTED", "UNAVAILABLE"):
                        lost.append(f"{kind}: {status}")
                if status == "UNAVAILABLE":
                    if server.process.poll() is not None:
                        return  # the server is gone: every later call would be refused the same way
                    time.sleep(0.05)  # shutting down: refused at the door; no need to spin
                n += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for thread in threads:
        thread.start()
    time.sleep(SIGTERM_AFTER_SECONDS)
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        exit_status = server.process.wait(timeout=GRACE_SECONDS + 60)
    except subprocess.TimeoutExpired:
        exit_status = None
    exit_seconds = time.monotonic() - sent
    for thread in threads:
        thread.join(timeout=CALL_TIMEOUT_SECONDS)
    server.stop()
    server_codes: collections.Counter = collections.Counter()
    server_ok: collections.Counter = collections.Counter()
    for line in log_path.read_text().splitlines():
        if '"event": "request"' in line:
            event = json.loads(line[line.index("{") :])
            server_codes[event["code"]] += 1
            if event["code"] == "OK":
                server_ok[event["method"]] += 1
    problems = list(lost[:10])
    if set(server_codes) - GOOD:
        problems.append(f"accepted calls ended with {dict(server_codes)}")
    if server_ok != client_ok:
        problems.append(f"server answered OK {dict(server_ok)} but clients received {dict(client_ok)}")
    if exit_status != 0 or exit_seconds > GRACE_SECONDS + EXIT_SLACK_SECONDS:
        problems.append(f"exit status {exit_status} after {exit_seconds:.1f} s (grace {GRACE_SECONDS:g} s)")
    return {
        "accepted": sum(server_codes.values()),
        "server_codes": dict(server_codes),
        "client_statuses": dict(client_statuses),
        "exit_status": exit_status,
        "exit_seconds": round(exit_seconds, 2),
        "problems": problems,
    }


# --- 3. token and TLS misuse ----------------------------------------------------------------------

TOKEN = "load-faults-token"


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def run_misuse(folder: Path, weights: Path, audio: dict[str, bytes]) -> dict:
    cert, key = _certificate(folder, "server")
    other, _ = _certificate(folder, "other")
    metrics_port = _free_port()
    os.environ["AUDIOEMBED_TOKEN"] = TOKEN  # the server reads it from the environment, not from argv
    try:
        server = Server(
            weights, folder / "misuse.log", "--tls-cert", str(cert), "--tls-key", str(key),
            "--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1", tls_root=cert,
        )  # fmt: skip
    finally:
        del os.environ["AUDIOEMBED_TOKEN"]
    address = f"localhost:{server.address.rsplit(':', 1)[1]}"
    trusted = grpc.ssl_channel_credentials(cert.read_bytes())
    token_cases = {
        "no token": (),
        "wrong token": (("authorization", "Bearer wrong"),),
        "empty bearer": (("authorization", "Bearer "),),
        "lower-case scheme": (("authorization", f"bearer {TOKEN}"),),
        "trailing space": (("authorization", f"Bearer {TOKEN} "),),
        "token under another key": (("x-authorization", f"Bearer {TOKEN}"),),
        "4 KiB token": (("authorization", "Bearer " + "x" * 4096),),
    }
    channel_cases = {
        "plaintext to the TLS port": lambda: grpc.insecure_channel(address),
        "untrusted certificate": lambda: grpc.secure_channel(
            address, grpc.ssl_channel_credentials(other.read_bytes())
        ),
        "wrong host name": lambda: grpc.secure_channel(
            address, trusted, options=(("grpc.ssl_target_name_override", "wrong.example"),)
        ),
    }
    before = {
        name: _metric(metrics_port, name)
        for name in ("audioembed_examples_total", "audioembed_batches_total")
    }
    results: dict[str, collections.Counter] = {}
    for label, metadata in token_cases.items():
        with grpc.secure_channel(address, trusted) as channel:
            caller = Caller(pb_grpc.EmbeddingServiceStub(channel), audio, metadata)
            results[label] = collections.Counter(caller.call(kind, n) for n, kind in enumerate(MIX))
    for label, make in channel_cases.items():
        with make() as channel:
            caller = Caller(
                pb_grpc.EmbeddingServiceStub(channel), audio, (("authorization", f"Bearer {TOKEN}"),)
            )
            results[label] = collections.Counter(
                caller.call(kind, 0) for kind in ("embed", "batch", "stream")
            )
    after = {name: _metric(metrics_port, name) for name in before}
    with grpc.secure_channel(address, trusted) as channel:
        control = Caller(
            pb_grpc.EmbeddingServiceStub(channel), audio, (("authorization", f"Bearer {TOKEN}"),)
        )
        control_status = control.call("embed", 0)
    after_control = _metric(metrics_port, "audioembed_examples_total")
    serving = server.wait_serving(timeout=30)
    server.stop()
    problems = []
    for label, statuses in results.items():
        allowed = {"UNAUTHENTICATED"} if label in token_cases else {"UNAVAILABLE"}
        if set(statuses) - allowed:
            problems.append(f"{label}: {dict(statuses)}")
    if after != before:
        problems.append(f"work was done for refused calls: {before} -> {after}")
    if control_status != "OK" or after_control != after["audioembed_examples_total"] + 1:
        problems.append(f"the control call gave {control_status}; examples {after_control}")
    if not serving:
        problems.append("the server stopped serving")
    return {
        "results": {k: dict(v) for k, v in results.items()},
        "metrics_before": before,
        "metrics_after": after,
        "control": control_status,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=500, help="calls per client in the load part")
    parser.add_argument("--sigterm-rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the full report here")
    args = parser.parse_args(argv)
    from audioembed import cli

    audio = clips()
    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="audioembed-load-") as name:
        folder = Path(name)
        weights = folder / "synthetic.safetensors"
        if cli.main(["weights", "synth", "--seed", "0", "-o", str(weights)]) != 0:
            raise SystemExit("could not write synthetic weights")
        report["load"] = load = run_load(args, folder, weights, audio)
        print(
            f"load: {load['answered']}/{load['calls']} calls answered in {load['seconds']} s by "
            f"{args.clients} clients; unexpected {load['unexpected_count']}; server RSS "
            f"{load['rss_mib']} MiB (growth {load['rss_growth_mib']} MiB); "
            f"serving at end {load['serving_at_end']}"
        )
        print(f"  statuses: {load['statuses']}")
        report["sigterm"] = []
        for round_ in range(1, args.sigterm_rounds + 1):
            result = run_sigterm(args, folder, weights, audio, round_)
            report["sigterm"].append(result)
            print(
                f"SIGTERM {round_}: {result['accepted']} accepted calls, server {result['server_codes']}, "
                f"clients {result['client_statuses']}, exit {result['exit_status']} after "
                f"{result['exit_seconds']} s; problems: {result['problems'] or 'none'}"
            )
        report["misuse"] = misuse = run_misuse(folder, weights, audio)
        print(f"misuse: {misuse['results']}")
        print(
            f"  metrics before {misuse['metrics_before']}, after {misuse['metrics_after']}; control call "
            f"{misuse['control']}; problems: {misuse['problems'] or 'none'}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
    problems = list(load["unexpected"])
    if load["answered"] != load["calls"]:
        problems.append(f"{load['calls'] - load['answered']} calls lost")
    if load["rss_growth_mib"] * 2**20 > RSS_GROWTH_LIMIT:
        problems.append(f"server RSS grew {load['rss_growth_mib']} MiB under load")
    if not load["serving_at_end"] or load["exit_status"] != 0:
        problems.append("the load server stopped serving or exited badly")
    problems += [p for result in report["sigterm"] for p in result["problems"]] + misuse["problems"]
    print("PROBLEMS: " + "; ".join(problems) if problems else "all criteria met")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
