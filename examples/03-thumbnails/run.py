"""Start the thumbnail workflow for every image given, wait, print each finished set.

python run.py OUT_DIR photo1.jpg photo2.png ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import thumbs


def main(out_dir: str, images: list[str]) -> int:
    flows = [thumbs.thumbnails(p, out_dir).delay() for p in images]
    for image, flow in zip(images, flows, strict=True):
        manifest = flow.result(timeout=300)  # the callback's result: the manifest's path
        written = json.loads(Path(manifest).read_text())["thumbnails"]
        print(image, "->", ", ".join(written), f"(recorded in {manifest})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
