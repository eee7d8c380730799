"""Stateful objects of a pipeline: register arrays, counter arrays, meters (BMv2 two-rate
three-color), learn lists and the errors shared by the package.

Cells are plain Python lists mutated in place: the generated per-packet code holds references to
them, so `reset` and `write` never replace a list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "PipelineError", "TableError", "Register", "Counter", "Meter", "MeterCell", "LearnList",
    "GREEN", "YELLOW", "RED",
]

GREEN, YELLOW, RED = 0, 1, 2

_TABLE_ERROR_CODES = frozenset({
    "ALREADY_EXISTS", "NOT_FOUND", "INVALID_ARGUMENT", "OUT_OF_RANGE", "RESOURCE_EXHAUSTED",
    "PERMISSION_DENIED",
})


class PipelineError(Exception):
    """The BMv2 JSON cannot be executed (malformed, or uses something this target lacks)."""


class TableError(Exception):
    """A state operation was refused; `code` is the gRPC status name the server returns."""

    def __init__(self, code: str, message: str) -> None:
        if code not in _TABLE_ERROR_CODES:
            raise ValueError(f"unknown TableError code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _check_index(kind: str, name: str, index: int, size: int) -> None:
    if not isinstance(index, int) or not 0 <= index < size:
        raise TableError("OUT_OF_RANGE", f"{kind} '{name}': index {index} outside [0, {size})")


class Register:
    """A register array: `size` cells of `bitwidth` bits, all zero initially."""

    def __init__(self, name: str, size: int, bitwidth: int) -> None:
        self.name = name
        self.size = size
        self.bitwidth = bitwidth
        self.mask = (1 << bitwidth) - 1
        self.cells: list[int] = [0] * size

    def read(self, index: int) -> int:
        _check_index("register", self.name, index, self.size)
        return self.cells[index]

    def write(self, index: int, value: int) -> None:
        _check_index("register", self.name, index, self.size)
        if not isinstance(value, int) or value < 0 or value > self.mask:
            raise TableError("INVALID_ARGUMENT",
                             f"register '{self.name}': value {value} does not fit {self.bitwidth} bits")
        self.cells[index] = value

    def reset(self) -> None:
        self.cells[:] = [0] * self.size


class Counter:
    """An indirect counter array counting packets and bytes (BMv2 always counts both)."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.packets: list[int] = [0] * size
        self.bytes: list[int] = [0] * size

    def read(self, index: int) -> tuple[int, int]:
        _check_index("counter", self.name, index, self.size)
        return self.packets[index], self.bytes[index]

    def write(self, index: int, packets: int, nbytes: int) -> None:
        _check_index("counter", self.name, index, self.size)
        self.packets[index] = packets
        self.bytes[index] = nbytes

    def reset(self) -> None:
        self.packets[:] = [0] * self.size
        self.bytes[:] = [0] * self.size


class MeterCell:
    """One two-rate three-color meter, as BMv2's `Meter`: rates in units (packets or bytes) per
    microsecond, bursts in units. Unconfigured meters return GREEN."""

    __slots__ = ("rates", "_tokens", "_last")

    def __init__(self) -> None:
        self.rates: list[tuple[float, int]] | None = None
        self._tokens: list[float] = []
        self._last: list[int] = []

    def configure(self, rates: list[tuple[float, int]] | None) -> None:
        if rates is None:
            self.rates = None
            self._tokens, self._last = [], []
            return
        self.rates = [(float(r), int(b)) for r, b in rates]
        self._tokens = [float(b) for _, b in self.rates]
        self._last = [0 for _ in self.rates]

    def execute(self, now_us: int, size: int) -> int:
        """Color for a packet of `size` units at time `now_us`. BMv2 checks the peak rate first
        (RED when short of tokens), then the committed rate (YELLOW)."""
        rates = self.rates
        if not rates:
            return GREEN
        # rates[0] = committed (YELLOW when exceeded), rates[-1] = peak (RED when exceeded)
        for i in range(len(rates) - 1, -1, -1):
            rate, burst = rates[i]
            last = self._last[i]
            if now_us > last:
                self._tokens[i] = min(self._tokens[i] + (now_us - last) * rate, float(burst))
                self._last[i] = now_us
            if self._tokens[i] < size:
                return i + 1
            self._tokens[i] -= size
        return GREEN


class Meter:
    """A meter array (indirect: `set_rates(i, ...)`; direct ones live on table entries)."""

    def __init__(self, name: str, size: int, unit: str, rate_count: int = 2) -> None:
        self.name = name
        self.size = size
        self.unit = unit          # "packets" or "bytes"
        self.rate_count = rate_count
        self.cells = [MeterCell() for _ in range(size)]

    def set_rates(self, index: int, rates: list[tuple[float, int]] | None) -> None:
        _check_index("meter", self.name, index, self.size)
        if rates is not None and len(rates) != self.rate_count:
            raise TableError("INVALID_ARGUMENT",
                             f"meter '{self.name}' needs {self.rate_count} (rate, burst) pairs")
        self.cells[index].configure(rates)

    def get_rates(self, index: int) -> list[tuple[float, int]] | None:
        _check_index("meter", self.name, index, self.size)
        return self.cells[index].rates

    def reset(self) -> None:
        for cell in self.cells:
            cell.configure(None)


@dataclass
class LearnList:
    """A digest's field list: `fields` is [(qualified field name, bitwidth)]."""

    id: int
    name: str
    fields: list[tuple[str, int]] = field(default_factory=list)
