"""The long fuzz run: mutated audio through probe, Embedder.embed and a real server; hostile weight files.

    python scripts/fuzz.py                       # 10,000 audio inputs + 5,000 weight files, 2 workers
    python scripts/fuzz.py --inputs 500 --weights-inputs 500 --json report.json
    python scripts/fuzz.py --replay 6123         # one audio case, in this process, with its traceback

Cases are deterministic (``--seed``); every one runs in a worker process, so a crash (a segfault in
libsndfile, say) is counted rather than ending the run. Prints the counts the README's "Reliability" section
quotes and exits 1 if anything was found: a crash, a hang over 20 s, an untyped exception, an
UNKNOWN/INTERNAL/DEADLINE_EXCEEDED status, a good batch item failing beside a bad one, a payload that ran,
unbounded RSS, or a server that stopped serving.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "server"), str(ROOT / "tests" / "fuzz")]

import fuzz_runner  # noqa: E402 - found through the path set just above

CHUNK = 500  # cases between server checks (health, RSS)
SERVER_RSS_GROWTH_LIMIT = 256 * 2**20  # bytes the server may grow after warm-up before it counts as a leak
WORKER_RSS_LIMIT = 1536 * 2**20  # a worker holds mmap'd weights (~290 MB) and one clip at a time


def run_audio(args: argparse.Namespace, folder: Path) -> dict:
    weights = folder / "synthetic.safetensors"
    from audioembed import cli

    if cli.main(["weights", "synth", "--seed", "0", "-o", str(weights)]) != 0:
        raise SystemExit("could not write synthetic weights")
    server = fuzz_runner.Server(weights, folder / "server.log", "--max-queue-delay-ms", "2")
    tally = fuzz_runner.Tally()
    worker_args = ["--mode", "audio", "--seed", str(args.seed), "--weights", str(weights)]
    worker_args += ["--address", server.address] + (["--rotate-rpcs"] if args.rotate_rpcs else [])
    rss = []
    serving = True
    try:
        for start in range(0, args.inputs, CHUNK):
            indexes = range(start, min(start + CHUNK, args.inputs))
            fuzz_runner.run_cases(
                indexes, worker_args, workers=args.workers, log_path=folder / "workers.log", tally=tally
            )
            serving = serving and server.wait_serving(timeout=30)
            rss.append(server.rss_bytes())
            print(
                f"  audio {tally.inputs}/{args.inputs}: {_brief(tally)}; "
                f"server RSS {rss[-1] / 2**20:.0f} MiB",
                flush=True,
            )
    finally:
        exit_status = server.stop()
    summary = tally.summary()
    summary.update(
        server_rss_mib=[round(r / 2**20) for r in rss],
        server_rss_growth_mib=round((rss[-1] - rss[0]) / 2**20, 1) if rss else None,
        server_serving_at_end=serving,
        server_exit_status=exit_status,
    )
    return summary


def run_weights(args: argparse.Namespace, folder: Path) -> dict:
    marker = folder / "PAYLOAD_RAN"
    tally = fuzz_runner.Tally()
    worker_args = ["--mode", "weights", "--seed", str(args.seed), "--marker", str(marker)]
    fuzz_runner.run_cases(
        range(args.weights_inputs),
        worker_args,
        workers=args.workers,
        log_path=folder / "workers.log",
        tally=tally,
    )
    summary = tally.summary()
    summary["payload_ran"] = marker.exists()
    print(f"  weights {tally.inputs}: {_brief(tally)}; marker file exists: {marker.exists()}", flush=True)
    return summary


def _brief(tally: fuzz_runner.Tally) -> str:
    return (
        f"{tally.crashes} crashes, {tally.hangs} hangs, {tally.untyped} untyped, "
        f"{tally.bad_statuses} bad statuses"
    )


def defects(audio: dict | None, weights: dict | None) -> list[str]:
    found = []
    for name, part in (("audio", audio), ("weights", weights)):
        if part is None:
            continue
        for key in ("crashes", "hangs", "untyped", "bad_statuses"):
            if part[key]:
                found.append(f"{name}: {part[key]} {key}")
        if part["max_worker_rss_mib"] * 2**20 > WORKER_RSS_LIMIT:
            found.append(f"{name}: a worker reached {part['max_worker_rss_mib']} MiB")
    if audio is not None:
        if not audio["server_serving_at_end"]:
            found.append("audio: the server stopped serving")
        if (
            audio["server_rss_growth_mib"] is not None
            and audio["server_rss_growth_mib"] * 2**20 > SERVER_RSS_GROWTH_LIMIT
        ):
            found.append(f"audio: server RSS grew {audio['server_rss_growth_mib']} MiB")
        if audio["server_exit_status"] != 0:
            found.append(f"audio: server exited {audio['server_exit_status']} on SIGTERM")
    if weights is not None and weights["payload_ran"]:
        found.append("weights: a malicious payload ran")
    return found


def replay(index: int, part: str, seed: int) -> int:
    """Run one case in this process through the in-process targets (no server), printing tracebacks."""
    import traceback

    import fuzz_inputs
    import fuzz_weights

    with tempfile.TemporaryDirectory() as folder:
        if part == "weights":
            case = fuzz_weights.case(seed, index, Path(folder) / "PAYLOAD_RAN")
            path = Path(folder) / case.file_name
            path.write_bytes(case.data)
            calls = {
                "read_weights": lambda: __import__("audioembed.vggish.weights").vggish.weights.read_weights(
                    path
                )
            }
        else:
            from audioembed import audio

            case = fuzz_inputs.case(seed, index)
            if case.pcm is not None:
                encoding, rate, channels = case.pcm
                calls = {
                    "decode_pcm": lambda: audio.decode_pcm(
                        case.data, encoding=encoding, sample_rate=rate, channels=channels
                    )
                }
            else:
                calls = {
                    "probe": lambda: audio.probe(case.data),
                    "load_audio": lambda: audio.load_audio(case.data),
                }
        print(f"case {index}: {case.label} ({len(case.data)} bytes)")
        for name, call in calls.items():
            try:
                print(f"{name}: ok -> {call()!r:.200}")
            except Exception:
                print(f"{name}:")
                traceback.print_exc()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=int, default=10_000, help="audio cases (default: %(default)s)")
    parser.add_argument(
        "--weights-inputs", type=int, default=5_000, help="weight-file cases (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rotate-rpcs",
        action="store_true",
        help="send each audio case through one of Embed / EmbedBatch / EmbedStream in turn (a third of the "
        "cost) instead of all three",
    )
    parser.add_argument("--json", type=Path, help="also write the full report here")
    parser.add_argument(
        "--replay", type=int, metavar="I", help="run case I in-process and show what it raises"
    )
    parser.add_argument("--part", choices=("audio", "weights"), default="audio", help="with --replay")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay(args.replay, args.part, args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="audioembed-fuzz-") as name:
        folder = Path(name)
        weights = run_weights(args, folder) if args.weights_inputs else None
        audio = run_audio(args, folder) if args.inputs else None
    elapsed = time.monotonic() - started
    report = {
        "seed": args.seed,
        "workers": args.workers,
        "seconds": round(elapsed),
        "audio": audio,
        "weights": weights,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
    found = defects(audio, weights)
    for name, part in (("audio", audio), ("weights", weights)):
        if part is not None:
            print(
                f"\n{name}: {part['inputs']} inputs, {part['crashes']} crashes, "
                f"{part['hangs']} hangs > 20 s, {part['untyped']} untyped exceptions, "
                f"{part['bad_statuses']} UNKNOWN/INTERNAL/DEADLINE statuses, "
                f"max worker RSS {part['max_worker_rss_mib']} MiB"
            )
            for target, counts in part["outcomes"].items():
                print(f"  {target}: {counts}")
            for bad in part["bad"][:20]:
                print(f"  ! case {bad['i']} {bad['label']}: {bad['problems']}")
    if audio is not None:
        print(
            f"server: RSS after each {CHUNK} cases {audio['server_rss_mib']} MiB (growth "
            f"{audio['server_rss_growth_mib']} MiB), serving at end: {audio['server_serving_at_end']}, "
            f"exit status on SIGTERM: {audio['server_exit_status']}"
        )
    if weights is not None:
        print(f"malicious payload ran: {weights['payload_ran']}")
    print(f"{elapsed:.0f} s; " + ("DEFECTS: " + "; ".join(found) if found else "no defects found"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
