"""Ask for a report: `python request.py 7` enqueues it and prints the job id."""

from __future__ import annotations

import sys

from tasks import publish_report

if __name__ == "__main__":
    job = publish_report.delay(sys.argv[1] if len(sys.argv) > 1 else "7")
    print(job.id)
