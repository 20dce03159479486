"""The search index's reader and writer agree: the keep time and cap that the scripts apply
are the ones ``kubeq.store.jobindex`` documents, and an entry parses back to its time and id
(a bare id to the time it was made; a malformed one, written by hand, does not stop a
reader)."""

from __future__ import annotations

import re
import time

from kubeq.store import ids, jobindex
from kubeq.store.scripts import source


def test_enqueue_lua_keeps_and_caps_as_documented() -> None:
    lua = source("enqueue")
    keep, cap = re.search(r"local IX_KEEP_MS, IX_CAP = (.+?), (\d+)\n", lua).groups()  # type: ignore[union-attr]
    assert eval(keep) == jobindex.KEEP_MS and int(cap) == jobindex.CAP
    skew = re.search(r"local IX_SKEW_MS = (\d+)\n", lua).groups()[0]  # type: ignore[union-attr]
    assert int(skew) == jobindex.SKEW_MS


def test_entries_parse_back() -> None:
    assert jobindex.parse(b"1733300000000:0661d6:a-b") == (1733300000000, "0661d6:a-b")
    assert jobindex.parse(b"garbage") == (0, "garbage")
    # a bare id: the time it was made
    job_id = ids.new_job_id()
    ms, got = jobindex.parse(job_id.encode())
    assert got == job_id and abs(ms - time.time() * 1000) < 5000
    assert jobindex.parse(b"order-12345678901234") == (0, "order-12345678901234")
