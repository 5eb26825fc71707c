"""A second host on this machine: a network namespace joined to this one by a veth pair.

Inside it ``127.0.0.1`` is the namespace's own loopback. Each forwarded port is served there by a
``socat`` that relays over the veth link to a ``socat`` on this host's end, which connects to
this host's ``127.0.0.1:<port>`` (a service that listens on every address, as Milvus does, is
reached over the link without the second relay): a process in the namespace reaches the broker, PostgreSQL and
Milvus only across the (virtual) network, at the addresses the run's instance names. Files are
shared, as a shared folder is between hosts. Needs root, ``ip`` and ``socat``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass


def available() -> str | None:
    """Why a namespace cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "socat") if shutil.which(tool) is None]
    return f"missing {', '.join(missing)} (apt-get install iproute2 socat)" if missing else None


@dataclass(frozen=True)
class SecondHost:
    name: str  # the namespace
    address: str  # its end of the veth link
    host_address: str  # this host's end

    def command(self, *args: str) -> list[str]:
        """``args`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _wait_listening(check: Sequence[str], address: str, port: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listening = subprocess.run([*check, "ss", "-ltnH", "src", f"{address}:{port}"], capture_output=True, text=True)
        if listening.stdout.strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {address}:{port} ({' '.join(check) or 'this host'})")


def _listens_everywhere(port: int) -> bool:
    """Whether a service already takes ``port`` on every address (Milvus does): the namespace
    reaches it over the link then, and no relay could bind beside it."""
    listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    return any(line.split()[3].rsplit(":", 1)[0] in ("0.0.0.0", "*", "[::]") for line in listening.splitlines())


def _free_octet(tag: str) -> int:
    """A /30 under 10.213.0.0/16 that no link of this host has: a namespace that another test
    left behind keeps its address, and the relay could not listen on it."""
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    first = int(tag[:2], 16) % 250 + 2
    for step in range(250):
        octet = (first - 2 + step) % 250 + 2
        if f" 10.213.{octet}." not in used:
            return octet
    raise AssertionError("every 10.213.x.0/30 of the test namespaces is taken")


@contextmanager
def second_host(ports: Sequence[int]) -> Iterator[SecondHost]:
    """The namespace with ``127.0.0.1:<port>`` of each of ``ports`` forwarded to this host's.
    Stop the processes started in it before leaving: a connection relayed for a process that
    outlives its namespace would never see the other end close."""
    tag = uuid.uuid4().hex[:6]
    octet = _free_octet(tag)
    host = SecondHost(f"hyp-{tag}", f"10.213.{octet}.2", f"10.213.{octet}.1")
    outside, inside = f"hyp{tag}h", f"hyp{tag}n"
    relays: list[subprocess.Popen] = []
    _ip("netns", "add", host.name)
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", host.name)
        _ip("addr", "add", f"{host.host_address}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        for args in (("addr", "add", f"{host.address}/30", "dev", inside), ("link", "set", inside, "up")):
            _ip("netns", "exec", host.name, "ip", *args)
        _ip("netns", "exec", host.name, "ip", "link", "set", "lo", "up")
        for port in ports:
            # Each in a session of its own: its forked children (one per connection) go with it.
            outer = ["socat", f"TCP-LISTEN:{port},bind={host.host_address},fork,reuseaddr", f"TCP:127.0.0.1:{port}"]
            inner = ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", f"TCP:{host.host_address}:{port}"]
            if not _listens_everywhere(port):
                relays.append(subprocess.Popen(outer, start_new_session=True))
                _wait_listening([], host.host_address, port)
            relays.append(subprocess.Popen(host.command(*inner), start_new_session=True))
            _wait_listening(host.command(), "127.0.0.1", port)
        yield host
    finally:
        for relay in relays:
            with suppress(ProcessLookupError):
                os.killpg(relay.pid, signal.SIGKILL)
            relay.wait()
        subprocess.run(["ip", "link", "del", outside], capture_output=True)
        subprocess.run(["ip", "netns", "del", host.name], capture_output=True)


def namespace_of(pid: int) -> str:
    """The network namespace of a process, as ``ip netns identify`` names it ("" for this host's)."""
    return subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True, text=True).stdout.strip()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0
