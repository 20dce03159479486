"""Web-scraping fan-out: one job per page, run in parallel by the workers, politely.

Tasks module of the example: `kubeq worker scraper --concurrency 16`. The fetch is plain
network I/O, so a thread pool of 16 per worker keeps many requests in flight at once; the
limits hold across every worker and pod together: at most 2 requests at once to any one
site (the concurrency key is the URL's host), and 10 requests a second in all.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request

import kubeq

app = kubeq.App()  # Redis from KUBEQ_REDIS_URL

_TITLE = re.compile(rb"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def site(url: str) -> str:
    """The concurrency key of a fetch: the site (host and port) it hits."""
    return urllib.parse.urlsplit(url).netloc or url


@app.task(
    queue="scrape",
    timeout=30,
    max_attempts=3,
    retry_on=(urllib.error.URLError, TimeoutError),
    concurrency_limit=2,  # requests at once per site, across every worker
    limit_key=site,
    rate_limit="10/s",  # requests per second in all, across every worker
)
def fetch_site(url: str) -> dict[str, object]:
    """Fetch one page; return its status, size and title. Network errors retry with backoff."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read(1_000_000)
            status = resp.status
    except urllib.error.HTTPError as err:  # an answer, not a failure to retry
        return {"url": url, "status": err.code, "bytes": 0, "title": ""}
    match = _TITLE.search(body)
    title = match.group(1).decode("utf-8", "replace").strip() if match else ""
    return {"url": url, "status": status, "bytes": len(body), "title": title}
