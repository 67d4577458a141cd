"""Property-based parity: the same inputs to a worker on each side, answers compared bit for bit.

- `protocol`: the JSON-lines protocol and how two answers differ (pure);
- `schema`: the feature schema a training run records (pure);
- `strategies`: hypothesis strategies drawn from that schema;
- `worker`: a worker on any side (`WorkerSide`, `HostWorker`, `ContainerWorker`), started together.
"""

from harness.parity.protocol import ProtocolError, Response, decode_ready, decode_response, differences, encode_request, same_bits
from harness.parity.schema import check_schema, read_schema
from harness.parity.worker import ContainerWorker, HostWorker, Worker, WorkerError, WorkerSide, ask_both, started_together

__all__ = [
    "ContainerWorker", "HostWorker", "ProtocolError", "Response", "Worker", "WorkerError", "WorkerSide", "ask_both", "check_schema",
    "decode_ready", "decode_response", "differences", "encode_request", "read_schema", "same_bits", "started_together",
]
