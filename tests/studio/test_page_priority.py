"""Page runs yield the CPU to generation: the thread running a page is lowered by
PAGE_NICENESS on Linux, the process's other threads keep their priority."""

from __future__ import annotations

import os
import sys
import threading

import pytest

pytest.importorskip("streamlit")
from nano_banana.studio.ui_common import PAGE_NICENESS, yield_cpu_to_workers  # noqa: E402


@pytest.mark.skipif(sys.platform != "linux", reason="threads have their own niceness on Linux")
def test_only_the_page_thread_is_lowered_and_only_once():
    base = os.getpriority(os.PRIO_PROCESS, os.getpid())
    seen = []

    def page_run():
        yield_cpu_to_workers()
        yield_cpu_to_workers()  # a second run on the same thread: not lowered again
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=page_run)
    thread.start()
    thread.join()
    assert seen == [min(19, base + PAGE_NICENESS)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
