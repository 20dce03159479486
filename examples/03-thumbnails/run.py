"""Enqueue thumbnails for every image given, wait, print what was written.

python run.py OUT_DIR photo1.jpg photo2.png ...
"""

from __future__ import annotations

import sys

import thumbs


def main(out_dir: str, images: list[str]) -> int:
    jobs = thumbs.app.enqueue_many([thumbs.make_thumbnails.s(p, out_dir) for p in images])
    for image, job in zip(images, jobs, strict=True):
        print(image, "->", ", ".join(job.result(timeout=300)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
