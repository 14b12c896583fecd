"""Task ports come from outside the kernel's ephemeral range, so outgoing connections never hold them."""

from __future__ import annotations

import socket

import pytest

from ecs_sandbox.containers import PortAllocator, _ephemeral_range, task_port_range


def test_task_ports_are_outside_the_ephemeral_range() -> None:
    low, high = _ephemeral_range()
    ports = PortAllocator()
    taken = [ports.take() for _ in range(50)]
    assert len(set(taken)) == 50
    assert all(not low <= port <= high for port in taken), taken
    assert all(port in task_port_range() for port in taken)


def test_a_port_an_outgoing_connection_holds_is_never_handed_out() -> None:
    """On Linux a listener cannot bind a port an outgoing connection holds (even with SO_REUSEADDR)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as outgoing:
            held = outgoing.getsockname()[1]
            ports = PortAllocator(range(held, held + 1))
            with pytest.raises(RuntimeError, match="no free task port"):
                ports.take()


def test_a_held_port_comes_back_after_release() -> None:
    ports = PortAllocator(range(task_port_range().start, task_port_range().start + 1))
    port = ports.take()
    ports.release(port)
    assert ports.take() == port
