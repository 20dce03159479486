"""Image thumbnails as one workflow: a chord of three resizes, then a callback that records
the finished set.

Tasks module of the example: `kubeq worker thumbs --concurrency 2`. Each size is its own job
(`resize`, in the process pool, so two resizes use two cores even under the GIL), and
`record_set` runs once, when the last of the three has finished, with their paths in order:
it writes `<stem>.json`, the manifest a web page or a CDN purge would read. A resize that fails
for good cancels the manifest (the set is not complete), and a worker killed mid-resize only
delays it: the resize runs again after its lease, and the manifest is still written once.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

import kubeq

app = kubeq.App()  # Redis from KUBEQ_REDIS_URL

SIZES = (64, 256, 1024)


@app.task(queue="thumbnails", pool="process", timeout=120, max_attempts=2)
def resize(source: str, out_dir: str, size: int) -> str:
    """Write one JPEG whose longest side is ``size``; return its path."""
    with Image.open(source) as original:
        thumb = original.convert("RGB")
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    target = Path(out_dir) / f"{Path(source).stem}-{size}.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    thumb.save(target, "JPEG", quality=85)
    return str(target)


@app.task(queue="thumbnails", max_attempts=3)
def record_set(paths: list[str], source: str, out_dir: str) -> str:
    """The chord's callback: every thumbnail of ``source`` is written; record the set."""
    manifest = Path(out_dir) / f"{Path(source).stem}.json"
    manifest.write_text(json.dumps({"source": source, "thumbnails": paths}, indent=2))
    return str(manifest)


def thumbnails(source: str, out_dir: str, sizes: tuple[int, ...] = SIZES) -> kubeq.Chord:
    """The workflow for one upload: ``thumbnails(path, out).delay()``."""
    return kubeq.chord(
        [resize.s(source, out_dir, size) for size in sizes], record_set.s(source, out_dir)
    )
