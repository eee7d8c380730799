"""Switch ports: one AF_PACKET raw socket per Linux interface, plus per-port pcap capture.

A port owns its socket (bound to the interface, promiscuous, outgoing frames ignored so the switch never
sees its own transmissions), PACKET_MMAP RX and TX rings on it (received frames are read from shared
memory; transmitted frames are queued in the TX ring and handed to the kernel by one ``flush()`` per
burst; plain recvmsg/send when the rings are unavailable) and its optional pcap writers (``<iface>_in.pcap`` / ``<iface>_out.pcap``
like BMv2's ``--pcap DIR``). Checksum/segmentation offloads must be disabled on the interfaces by whoever
creates them (topology or test harness): with TSO/GRO on, the kernel hands us >MTU frames and bad
checksums.
"""

from __future__ import annotations

import logging
import mmap
import socket
import struct
import time
from pathlib import Path

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
PACKET_VERSION = 10
PACKET_RX_RING = 5
PACKET_TX_RING = 13
PACKET_LOSS = 14  # the kernel skips a malformed TX frame instead of stopping at it
TP_STATUS_SEND_REQUEST = 1
TP_STATUS_SENDING = 2
TX_DATA_OFFSET = 32  # TPACKET2_HDRLEN - sizeof(sockaddr_ll): where a TX frame's data starts
TX_FRAMES = 512
TX_LEN = struct.Struct("=II")  # tp_len, tp_snaplen at offset 4
TPACKET_V2 = 1
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
TPACKET2_HDR = struct.Struct("=IIIHHIIHH")  # status, len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid
SLL_PKTTYPE_OFFSET = 32 + 10  # sockaddr_ll follows the (aligned) tpacket2_hdr
RING_BLOCK = 1 << 16
RING_BLOCKS = 64
RECV_SIZE = 65536  # jumbo-safe; MTU-size frames are the common case
PACKET_AUXDATA = 8
AUXDATA = struct.Struct("=IIIHHHH")  # tpacket_auxdata: status, len, snaplen, mac, net, vlan_tci, vlan_tpid
AUXDATA_SPACE = socket.CMSG_SPACE(AUXDATA.size)


class PcapWriter:
    """A minimal libpcap (microsecond, LINKTYPE_ETHERNET) writer, flushed per packet."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = open(self.path, "wb", buffering=0)  # noqa: SIM115 - lives as long as the port
        self._f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def write(self, data: bytes, ts: float | None = None) -> None:
        if ts is None:
            ts = time.time()
        sec = int(ts)
        usec = int((ts - sec) * 1_000_000)
        self._f.write(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)

    def close(self) -> None:
        self._f.close()


class Port:
    """One switch port bound to a Linux interface."""

    def __init__(self, number: int, iface: str, pcap_dir: str | Path | None = None, use_ring: bool = True,
                 use_tx_ring: bool = True) -> None:
        self.number = number
        self.use_tx_ring = use_tx_ring
        self.tx_pending = False
        self.tx_dropped = 0
        self.iface = iface
        self.admin_up = True
        self.rx_packets = 0
        self.tx_packets = 0
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            self.sock.bind((iface, 0))
            ifindex = socket.if_nametoindex(iface)
            mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
            self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            try:
                self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:  # kernels < 4.20: filtered by pkttype in recv()
                pass
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.fd = self.sock.fileno()
        self.truncated = 0
        self._ring: mmap.mmap | None = None
        if use_ring:
            try:
                self._setup_ring()
            except OSError as exc:  # no PACKET_MMAP: plain recvfrom
                log.info("port %d (%s): no RX ring (%s), using recvfrom", number, iface, exc)
                self._ring = None
        self.pcap_in: PcapWriter | None = None
        self.pcap_out: PcapWriter | None = None
        if pcap_dir is not None:
            Path(pcap_dir).mkdir(parents=True, exist_ok=True)
            self.pcap_in = PcapWriter(Path(pcap_dir) / f"{iface}_in.pcap")
            self.pcap_out = PcapWriter(Path(pcap_dir) / f"{iface}_out.pcap")

    def _setup_ring(self) -> None:
        """PACKET_MMAP RX ring (TPACKET_V2): frames are read from shared memory, no syscall per frame."""
        try:
            mtu = int(Path(f"/sys/class/net/{self.iface}/mtu").read_text())
        except (OSError, ValueError):
            mtu = 1500
        frame = 2048
        while frame < mtu + 14 + 4 + 128:
            frame *= 2
        block = max(RING_BLOCK, frame)
        nblocks = max(4, RING_BLOCKS * RING_BLOCK // block)
        self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack("IIII", block, nblocks, frame,
                                                                     nblocks * (block // frame)))
        rx_size = block * nblocks
        tx_blocks = max(1, TX_FRAMES * frame // block)
        tx_size = 0
        if self.use_tx_ring:
            try:
                self.sock.setsockopt(SOL_PACKET, PACKET_LOSS, 1)
                self.sock.setsockopt(SOL_PACKET, PACKET_TX_RING, struct.pack("IIII", block, tx_blocks, frame,
                                                                             tx_blocks * (block // frame)))
                tx_size = block * tx_blocks
            except OSError as exc:
                log.info("port %d (%s): no TX ring (%s)", self.number, self.iface, exc)
        self._ring = mmap.mmap(self.fd, rx_size + tx_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._frame = frame
        self._nframes = nblocks * (block // frame)
        self._pos = 0
        if tx_size:
            self._tx_base = rx_size
            self._tx_nframes = tx_blocks * (block // frame)
            self._tx_pos = 0
            self._tx_max = frame - TX_DATA_OFFSET
            self.send = self._send_ring  # type: ignore[method-assign]
        self.recv = self._recv_ring  # type: ignore[method-assign]

    def _recv_ring(self) -> bytes | None:
        ring, frame, unpack = self._ring, self._frame, TPACKET2_HDR.unpack_from
        while True:
            off = self._pos * frame
            if not ring[off] & TP_STATUS_USER:
                return None
            status, length, snaplen, mac, _net, _s, _ns, tci, tpid = unpack(ring, off)
            pkttype = ring[off + SLL_PKTTYPE_OFFSET]
            data = ring[off + mac:off + mac + snaplen]
            ring[off:off + 4] = b"\x00\x00\x00\x00"  # hand the frame back to the kernel
            self._pos = (self._pos + 1) % self._nframes
            if pkttype == PACKET_OUTGOING:
                continue
            if snaplen < length:
                self.truncated += 1
                if self.truncated == 1:
                    log.warning("port %d (%s): frame of %d bytes truncated by the RX ring and dropped "
                                "(disable GRO/TSO on the interface)", self.number, self.iface, length)
                continue
            if status & TP_STATUS_VLAN_VALID:  # the kernel stripped the 802.1Q tag: put it back
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
                data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            self.rx_packets += 1
            if self.pcap_in is not None:
                self.pcap_in.write(data)
            return data

    def recv(self) -> bytes | None:
        """Return the next received frame, or None when the socket is drained (recvfrom mode; the RX
        ring replaces this method when available). PACKET_AUXDATA gives back stripped VLAN tags."""
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(RECV_SIZE, AUXDATA_SPACE)
            except (BlockingIOError, InterruptedError):
                return None
            if addr[2] == PACKET_OUTGOING:
                continue
            for level, kind, payload in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(payload) >= AUXDATA.size:
                    status, _len, _snap, _mac, _net, tci, tpid = AUXDATA.unpack_from(payload)
                    if status & TP_STATUS_VLAN_VALID:
                        tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
                        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            self.rx_packets += 1
            if self.pcap_in is not None:
                self.pcap_in.write(data)
            return data

    def _send_ring(self, data: bytes) -> None:
        """Queue a frame in the TX ring; ``flush()`` hands every queued frame to the kernel at once."""
        n = len(data)
        if n > self._tx_max:
            self.flush()  # keep the order, then send the odd big frame directly
            Port.send(self, data)  # the plain socket send (self.send is this ring method)
            return
        if self.pcap_out is not None:
            self.pcap_out.write(data)
        ring = self._ring
        off = self._tx_base + self._tx_pos * self._frame
        if ring[off] & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING):
            self.flush()
            if ring[off] & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING):
                self.tx_dropped += 1  # the ring is full and the kernel has not caught up
                return
        TX_LEN.pack_into(ring, off + 4, n, n)
        ring[off + TX_DATA_OFFSET:off + TX_DATA_OFFSET + n] = data
        ring[off:off + 4] = b"\x01\x00\x00\x00"  # TP_STATUS_SEND_REQUEST
        self._tx_pos = (self._tx_pos + 1) % self._tx_nframes
        self.tx_pending = True
        self.tx_packets += 1

    def flush(self) -> None:
        """Transmit the frames queued in the TX ring (one syscall)."""
        if not self.tx_pending:
            return
        self.tx_pending = False
        try:
            self.sock.send(b"")
        except BlockingIOError:
            self.tx_pending = True  # retried at the next flush
        except OSError as exc:  # ENETDOWN...: the kernel marks the frames; they are reused
            log.debug("port %d (%s): TX ring flush failed: %s", self.number, self.iface, exc)
            self._reset_tx_ring()

    def _reset_tx_ring(self) -> None:
        ring = self._ring
        for i in range(self._tx_nframes):
            off = self._tx_base + i * self._frame
            if ring[off] & TP_STATUS_SEND_REQUEST:
                ring[off:off + 4] = b"\x00\x00\x00\x00"

    def send(self, data: bytes) -> None:
        if self.pcap_out is not None:
            self.pcap_out.write(data)
        try:
            self.sock.send(data)
            self.tx_packets += 1
        except BlockingIOError:
            log.debug("port %d (%s): tx buffer full, frame dropped", self.number, self.iface)
        except OSError as exc:  # e.g. ENETDOWN when the link is down, EMSGSIZE
            log.debug("port %d (%s): send failed: %s", self.number, self.iface, exc)

    def oper_up(self) -> bool:
        """Operational state of the interface (carrier and IFF_UP), as the kernel reports it."""
        try:
            state = Path(f"/sys/class/net/{self.iface}/operstate").read_text().strip()
        except OSError:
            return False
        return state in ("up", "unknown")

    def close(self) -> None:
        if self._ring is not None:
            try:
                self.flush()
            except (OSError, ValueError):
                pass
            try:
                self._ring.close()
            except BufferError:
                pass
            self._ring = None
        self.sock.close()
        for w in (self.pcap_in, self.pcap_out):
            if w is not None:
                w.close()
