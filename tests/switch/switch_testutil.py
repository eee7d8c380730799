"""Helpers for the switch tests: unique veth pairs and a raw-socket 'wire' on the test side of a port."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid

ETH_TYPE = 0x88B5  # local experimental ethertype: no other traffic uses it


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class VethPairs:
    """``n`` veth pairs named <tag><i>a (switch side) / <tag><i>b (test side), removed on close."""

    def __init__(self, n: int) -> None:
        self.tag = "sw" + uuid.uuid4().hex[:6]
        self.pairs = []
        try:
            for i in range(n):
                a, b = f"{self.tag}{i}a", f"{self.tag}{i}b"
                _ip("link", "add", a, "type", "veth", "peer", "name", b)
                self.pairs.append((a, b))
                for dev in (a, b):
                    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], capture_output=True)
                    _ip("link", "set", dev, "up")
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        for a, _b in self.pairs:
            subprocess.run(["ip", "link", "del", a], capture_output=True)
        self.pairs = []


class Wire:
    """The test side of a port: raw socket that sends and receives frames of ``ETH_TYPE``."""

    def __init__(self, iface: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_TYPE))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((iface, 0))
        self.sock.settimeout(0.05)

    @staticmethod
    def frame(tag: int, size: int = 64) -> bytes:
        head = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + ETH_TYPE.to_bytes(2, "big")
        body = tag.to_bytes(4, "big")
        return head + body + b"\x00" * max(0, size - len(head) - len(body))

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def recv_all(self, wait: float = 0.3) -> list[bytes]:
        out, deadline = [], time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            if addr[2] != 4:  # not PACKET_OUTGOING
                out.append(data)
        return out

    def close(self) -> None:
        self.sock.close()
