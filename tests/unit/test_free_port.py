"""``kubeq.testing.server.free_port`` hands out ports outside the ephemeral range, where no
outgoing connection can take them before the server binds, and never the same one twice."""

from __future__ import annotations

import socket

from kubeq.testing.server import _ephemeral_range, free_port


def test_ports_are_bindable_unique_and_below_the_ephemeral_range() -> None:
    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(p < low for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # nobody holds it
