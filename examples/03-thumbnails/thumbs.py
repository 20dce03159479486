"""Image thumbnails: several sizes per upload, CPU-bound, so they run in the process pool.

Tasks module of the example: `kubeq worker thumbs --concurrency 2`. `pool="process"` sends
the resize to a child process, so two thumbnails use two cores even under the GIL.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

import kubeq

app = kubeq.App()  # Redis from KUBEQ_REDIS_URL

SIZES = (64, 256, 1024)


@app.task(queue="thumbnails", pool="process", timeout=120, max_attempts=2)
def make_thumbnails(source: str, out_dir: str, sizes: list[int] | None = None) -> list[str]:
    """Write one JPEG per size (longest side, default SIZES); return their paths."""
    written = []
    with Image.open(source) as original:
        image = original.convert("RGB")
        for size in sizes or SIZES:
            thumb = image.copy()
            thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
            target = Path(out_dir) / f"{Path(source).stem}-{size}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            thumb.save(target, "JPEG", quality=85)
            written.append(str(target))
    return written
