"""p4target.switch: the switch daemon (ports, egress queues, pcap, runtime CLI) around a Pipeline."""

from p4target.switch.switch import Switch

__all__ = ["Switch"]
