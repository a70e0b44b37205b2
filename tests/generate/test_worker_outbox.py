"""The worker's outbox: the engine never waits on a slow reader, progress arrives at its
latest (stale steps dropped), everything else in order, and previews cross as small JPEGs."""

from __future__ import annotations

import pickle
import threading
import time

from PIL import Image

from nano_banana.generate.worker import Outbox, decode_preview, encode_preview


class SlowConn:
    """A connection whose reader is busy until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[tuple] = []

    def send(self, message: tuple) -> None:
        self.release.wait(10)
        self.sent.append(message)


def test_a_slow_reader_never_blocks_the_engine_and_stale_progress_is_dropped():
    conn = SlowConn()
    outbox = Outbox(conn)
    outbox.send(("set", 1, {"status": "running"}))
    time.sleep(0.1)  # the sender is now stuck on that first send
    started = time.perf_counter()
    for step in range(1, 101):
        outbox.post_progress(1, {"progress": step})
    outbox.send(("set", 1, {"status": "done"}))
    assert time.perf_counter() - started < 0.5  # 101 posts never waited for the reader
    conn.release.set()
    outbox.close()
    assert conn.sent == [
        ("set", 1, {"status": "running"}),
        ("set", 1, {"progress": 100}),  # steps 1..99 were stale: dropped
        ("set", 1, {"status": "done"}),  # after the progress that came before it
    ]


def test_previews_cross_as_small_jpegs():
    preview = Image.radial_gradient("L").convert("RGB").resize((256, 256))
    data = encode_preview(preview)
    assert len(data) < len(pickle.dumps(preview)) / 5
    back = decode_preview(data)
    assert back.size == (256, 256) and back.mode == "RGB"
