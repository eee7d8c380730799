"""p4target.pipeline: executes a BMv2 JSON program with v1model (simple_switch) semantics.

Pure (no sockets, no threads, no clocks) and not thread-safe; see docs/internals.md "Pipeline API".
"""

from .pipeline import PKT_INSTANCE_TYPE, EgressJob, Pipeline
from .state import Counter, LearnList, Meter, PipelineError, Register, TableError
from .tables import Entry, KeySpec, Match, Table

__all__ = [
    "Pipeline", "PipelineError", "TableError", "EgressJob", "PKT_INSTANCE_TYPE",
    "Table", "Match", "Entry", "KeySpec", "Register", "Counter", "Meter", "LearnList",
]
