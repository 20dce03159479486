"""Enqueue one fetch per URL in one round trip, then print each result as it is ready.

python run.py https://example.com https://example.org ...
"""

from __future__ import annotations

import sys
import time

import scraper


def main(urls: list[str]) -> int:
    started = time.monotonic()
    jobs = scraper.app.enqueue_many([scraper.fetch_site.s(url) for url in urls])
    failed = 0
    for job in jobs:
        try:
            page = job.result(timeout=120)
        except Exception as exc:
            failed += 1
            print(f"FAILED {job.id}: {exc}")
            continue
        print(f"{page['status']} {page['bytes']:>8} B  {page['url']}  {page['title']!r}")
    print(f"{len(urls)} sites in {time.monotonic() - started:.2f} s, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
