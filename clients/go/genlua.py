"""Writes the Lua the Go client embeds (clients/go/kubeq/lua/*.lua) from kubeq's store: each
script's full text, ``kubeq.store.scripts.source(name)`` (what it uses of the shared parts,
then its own part), so the Go client sends exactly what the Python client sends, by the
same SHA1. ``go generate ./...`` in clients/go runs it (with ``$KUBEQ_PYTHON``, default the
checkout's .venv); tests/protocol fails, naming that command, when a copy is stale.

    python clients/go/genlua.py [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("enqueue", "cancel", "abort", "abort_item", "flow", "batch")
"""The scripts of protocol version 1 a producer runs (docs/protocol.md, Scripts): enqueue,
cancel and abort (abort_item for an item of a batch), and the flow patterns' flow and
batch."""
COMMAND = "cd clients/go && go generate ./..."
"""What to run when a copy is stale."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "kubeq" / "lua")
    out = parser.parse_args().out
    sys.path.insert(0, str(HERE.parents[1] / "src"))  # the checkout's kubeq, installed or not
    from kubeq.store.scripts import source  # noqa: PLC0415 - after the path is set

    out.mkdir(parents=True, exist_ok=True)
    for name in SCRIPTS:
        (out / f"{name}.lua").write_text(source(name))
    for stray in sorted(set(out.glob("*.lua")) - {out / f"{n}.lua" for n in SCRIPTS}):
        stray.unlink()


if __name__ == "__main__":
    main()
