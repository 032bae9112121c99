"""One ``/metrics`` for the processes of ``serve --processes N``: the children's expositions, merged.

Each child serves its own metrics on a loopback port; the supervisor's endpoint scrapes them on every
request and concatenates them family by family, adding a ``process="i"`` label to every sample, so one
Prometheus target covers the whole server and ``sum without (process) (...)`` gives the server's totals
(counters and histograms add up across processes). A child that does not answer (restarting) is left out
of that scrape, which Prometheus treats as a counter reset when it comes back. The supervisor adds its own
``audioembed_processes`` gauge and ``audioembed_process_restarts_total`` counter.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Sequence
from urllib.error import URLError

from audioembed_server.metrics import Counter, Gauge

SCRAPE_TIMEOUT_SECONDS = 2.0  # a child busy beyond this is left out of one scrape rather than stall it


def _with_label(sample: str, name: str, value: str) -> str:
    """``m{a="b"} 1`` -> ``m{name="value",a="b"} 1``; ``m 1`` -> ``m{name="value"} 1``."""
    label = f'{name}="{value}"'
    brace, space = sample.find("{"), sample.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        rest = sample[brace + 1 :]
        return f"{sample[: brace + 1]}{label}{'' if rest.startswith('}') else ','}{rest}"
    if space == -1:
        raise ValueError(f"not a Prometheus sample line: {sample!r}")
    return f"{sample[:space]}{{{label}}}{sample[space:]}"


def merge_expositions(expositions: Sequence[tuple[str, str]], *, label: str = "process") -> str:
    """Merge Prometheus text expositions into one, labelling each one's samples.

    Parameters
    ----------
    expositions : sequence of (label value, exposition text)
        E.g. ``[("0", text_of_child_0), ("1", text_of_child_1)]``.
    label : str
        The label added to every sample.

    Returns
    -------
    str
        Every metric family once (its ``# HELP`` / ``# TYPE`` from the first exposition that has it), followed
        by the samples of all expositions in the given order, as the text format requires of a family.
    """
    headers: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for value, text in expositions:
        family = ""
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(maxsplit=3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = parts[2]
                    headers.setdefault(family, [])
                    samples.setdefault(family, [])
                    if not any(h.split(maxsplit=2)[1] == parts[1] for h in headers[family]):
                        headers[family].append(line)
                continue
            samples.setdefault(family, []).append(_with_label(line, label, value))
            headers.setdefault(family, [])
    lines = [line for family in samples for line in (*headers[family], *samples[family])]
    return "\n".join(lines) + "\n"


class MergedMetrics:
    """What the supervisor's ``/metrics`` renders: its own metrics plus the merged children's.

    Parameters
    ----------
    ports : callable
        ``() -> [(process label, loopback metrics port), ...]`` of the children serving now.
    live : callable
        ``() -> int``: children alive now.
    """

    def __init__(self, ports: Callable[[], list[tuple[str, int]]], *, live: Callable[[], int]) -> None:
        self._ports = ports
        self.processes = Gauge("audioembed_processes", "server processes alive under this supervisor")
        self.processes.read = live
        self.restarts = Counter("audioembed_process_restarts_total", "server processes restarted after dying")
        self.restarts.inc(0)  # exported as 0 from the start, not absent until the first restart

    def render(self) -> str:
        own = "\n".join([*self.processes.render(), *self.restarts.render()]) + "\n"
        scraped = []
        for value, port in self._ports():
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_TIMEOUT_SECONDS
                ) as response:
                    scraped.append((value, response.read().decode()))
            except (URLError, OSError, TimeoutError):
                continue  # restarting or stuck: left out of this scrape
        return own + merge_expositions(scraped)
