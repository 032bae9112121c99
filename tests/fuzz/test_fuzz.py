"""The CI slice of the fuzzer (``scripts/fuzz.py`` is the long run): same harness, fewer cases.

Each case runs in a worker process against a real server, so a crash or a hang is counted, not fatal.
A clean run means: no crash, no hang, only the project's own exceptions, only proper gRPC statuses, the
server still serving, and no hostile payload ever ran.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fuzz_inputs
import fuzz_runner
import fuzz_weights
import pytest

AUDIO_SYSTEMATIC_STRIDE = 97  # every 97th systematic case: all seeds, mutations and PCM formats get a turn
AUDIO_RANDOM_CASES = 24
WEIGHTS_SYSTEMATIC_STRIDE = 7
WEIGHTS_RANDOM_CASES = 150


def _clean(tally: fuzz_runner.Tally) -> None:
    assert (tally.crashes, tally.hangs, tally.untyped, tally.bad_statuses) == (0, 0, 0, 0), tally.bad


def test_the_harness_counts_crashes_hangs_and_untyped_exceptions(tmp_path):
    tally = fuzz_runner.Tally()
    fuzz_runner.run_cases(
        [0, 1, 2, 3, 0],
        ["--mode", "selftest", "--seed", "0"],
        workers=1,
        log_path=tmp_path / "log",
        tally=tally,
        case_deadline=5.0,
    )
    assert (tally.inputs, tally.crashes, tally.hangs, tally.untyped) == (5, 1, 1, 1)
    problems = {bad["i"]: bad["problems"][0] for bad in tally.bad}
    assert "exited with status -11" in problems[2]  # SIGSEGV, told apart from a clean exit
    assert problems[3].startswith("hang")
    assert problems[1].startswith("selftest: U:ValueError")
    assert tally.outcomes["selftest"]["ok"] == 2  # a fresh worker took over after the crash and the hang


def test_tally_counts_bad_statuses_and_slow_targets():
    tally = fuzz_runner.Tally()
    tally.add({"i": 0, "label": "a", "results": {"Embed": ["INTERNAL", 0.1], "EmbedStream": ["OK", 21.0]}})
    tally.add({"i": 1, "label": "b", "results": {"EmbedBatch": ["OK[UNKNOWN,OK]", 0.1]}})
    tally.add({"i": 2, "label": "c", "results": {"Embed": ["INVALID_ARGUMENT", 0.1], "probe": ["E:X", 0.0]}})
    assert (tally.bad_statuses, tally.hangs, len(tally.bad)) == (2, 1, 2)


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.check_call"])
def test_the_payloads_are_live(tmp_path, name):
    # The proof that "no marker" means "no code ran": plain pickle.loads of the same bytes creates it.
    marker = tmp_path / "ran"
    payload = fuzz_weights.payloads(marker)[name]
    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
                   input=payload, check=False, capture_output=True, timeout=60)  # fmt: skip
    assert marker.exists()


def test_hostile_and_corrupted_weight_files_are_refused_with_typed_errors(tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    hostile = len(fuzz_weights.hostile_cases(marker))
    corrupted = fuzz_weights.corruption_cases()
    systematic = hostile + len(corrupted)
    indexes = [
        *range(hostile),
        *(
            hostile + k
            for k, case in enumerate(corrupted)
            if k % WEIGHTS_SYSTEMATIC_STRIDE == 0 or case.label.endswith(":intact")
        ),
        *range(systematic, systematic + WEIGHTS_RANDOM_CASES),
    ]
    tally = fuzz_runner.Tally()
    fuzz_runner.run_cases(
        indexes,
        ["--mode", "weights", "--seed", "1", "--marker", str(marker)],
        workers=2,
        log_path=tmp_path / "log",
        tally=tally,
    )
    _clean(tally)
    assert not marker.exists()
    assert tally.inputs == len(indexes)
    assert tally.outcomes["read"]["E:UnsafePickleError"] >= 19 * 4  # every payload, in each container
    assert tally.outcomes["read"]["ok"] >= 1  # the intact seeds still read: the refusals are not blanket


@pytest.mark.slow
def test_mutated_audio_through_probe_embed_and_every_rpc(tmp_path, synthetic_weights):
    systematic = len(fuzz_inputs.systematic_cases())
    indexes = [
        *range(0, systematic, AUDIO_SYSTEMATIC_STRIDE),
        *range(systematic, systematic + AUDIO_RANDOM_CASES),
    ]
    server = fuzz_runner.Server(synthetic_weights, tmp_path / "server.log", "--max-queue-delay-ms", "2")
    try:
        tally = fuzz_runner.Tally()
        fuzz_runner.run_cases(
            indexes,
            [
                "--mode",
                "audio",
                "--seed",
                "1",
                "--weights",
                str(synthetic_weights),
                "--address",
                server.address,
            ],
            workers=2,
            log_path=tmp_path / "workers.log",
            tally=tally,
        )
        serving = server.wait_serving(timeout=30)
    finally:
        exit_status = server.stop()
    _clean(tally)
    assert tally.inputs == len(indexes)
    assert serving and exit_status == 0
    for target in ("probe", "embed", "Embed", "EmbedStream"):
        outcomes = tally.outcomes[target]
        assert outcomes.get("ok", 0) > 0 and sum(outcomes.values()) > outcomes.get("ok", 0), (
            target,
            outcomes,
        )
    assert tally.max_worker_rss < 1536 * 2**20


REGRESSIONS = Path(__file__).resolve().parent / "regressions"


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("weights/*")), ids=lambda p: p.name)
def test_weight_files_that_once_raised_untyped_errors(path, tmp_path):
    from audioembed.errors import AudioEmbedError
    from audioembed.vggish.weights import read_weights

    copy = tmp_path / path.name.split("--")[0]  # the part before "--" is the name the reader sees
    copy.write_bytes(path.read_bytes())
    with pytest.raises(AudioEmbedError):
        read_weights(copy)
