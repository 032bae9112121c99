"""Graceful shutdown answers a call that gRPC accepted but that still waits for a handler thread.

Found by SIGTERM under load (scripts/load_faults.py, and test_lifecycle's SIGTERM test on a loaded machine):
with every handler thread busy, no embedding RPC was "in flight" for a moment, so shutdown cut its grace
period short and gRPC cancelled the queued call ("Cancelling all calls").
"""

from __future__ import annotations

import threading
import time

from audioembed_server import EmbeddingClient

from tests.server.conftest import int16_tone, running_server

BUSY_SECONDS = 1.0  # how long the handler threads are held by work the servicer does not count


def test_a_call_queued_for_a_thread_is_answered_during_shutdown(embedder):
    with running_server(lambda: embedder, workers=2, max_concurrent_streams=1) as (server, address):
        release = threading.Event()
        for _ in range(2):  # occupy both handler threads, as reflection or health calls might
            server.rpc_pool.submit(release.wait, BUSY_SECONDS * 10)
        client = EmbeddingClient(address, max_retries=0, timeout=60)
        outcome: list = []
        caller = threading.Thread(target=lambda: outcome.append(client.embed(int16_tone(1.0), 16000)))
        caller.start()
        deadline = time.monotonic() + 10
        while server.rpc_pool.waiting < 1:  # the call has reached the pool: accepted, no thread yet
            assert time.monotonic() < deadline, "the call never reached the server"
            time.sleep(0.01)
        assert server.servicer.in_flight == 0
        stopper = threading.Thread(target=server.stop, kwargs={"grace": 30})
        stopper.start()
        time.sleep(BUSY_SECONDS)  # before the fix, shutdown had cancelled the queued call by now
        release.set()
        caller.join(60)
        stopper.join(60)
        client.close()
    assert [result.num_examples for result in outcome] == [1]


def test_the_pool_counts_what_waits_for_a_thread():
    from audioembed_server.app import CountingPool

    pool = CountingPool(max_workers=1)
    release = threading.Event()
    first = pool.submit(release.wait, 10)
    queued = [pool.submit(lambda: 7) for _ in range(3)]
    time.sleep(0.2)
    assert pool.waiting == 3
    release.set()
    assert first.result(10) is True and [f.result(10) for f in queued] == [7, 7, 7]
    assert pool.waiting == 0
    pool.shutdown()
