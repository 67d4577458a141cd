"""Single-row examples per second: persistent workers versus one `docker exec` per example.

Starts the configured workers ([tool.mlrepro.worker]) in a container of the
current image and on the host, then measures:

- sequential: one request at a time, as a hypothesis property sends them
  (container alone, host alone, and both for each example = a parity example);
- pipelined: up to WINDOW requests in flight (what the workers can sustain);
- `docker exec python -m ml_project.predict` per example, a handful only
  (each costs an exec plus an interpreter start and the scikit-learn import).

`run() -> dict` prints them as a table and returns the medians (examples/s)
and the ratio; `python benchmarks/bench_parity.py` does the same. Not a timed test: the
figures are for the README and vary with the machine's load.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.config import load_config  # noqa: E402
from harness.docker.engine import Engine  # noqa: E402
from harness.verify import prepare  # noqa: E402
from harness.parity.worker import ContainerWorker, HostWorker, Worker, ask_both, started_together  # noqa: E402

N = 1000  # single-row examples per round
ROUNDS = 3
WINDOW = 16  # pipelined requests in flight per worker
EXECS = 5  # docker exec examples (about 2 s each)


def _rate(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def _pipelined(workers: tuple[Worker, ...], row: dict[str, float], n: int) -> float:
    start = time.perf_counter()
    sent = done = 0
    while done < n:
        while sent < n and sent - done < WINDOW:
            for w in workers:
                w.submit([row])
            sent += 1
        for w in workers:
            assert w.result().ok
        done += 1
    return n / (time.perf_counter() - start)


def _median(fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(ROUNDS))


def run(root: Path = ROOT, *, n: int = N, show: bool = True) -> dict:
    """Measure, print the table (unless show=False) and return the figures in examples/s:
    {"sequential": {side: rate}, "pipelined": {side: rate}, "docker_exec": rate, "ratio": parity/docker_exec, ...}."""
    config = load_config(root)
    engine = Engine.connect()
    _, image = prepare(config, engine, progress=lambda message: None)
    container, host = ContainerWorker(engine, config, image.tag), HostWorker(config)
    with started_together(container, host) as (cw, hw):
        schema = host.schema()
        row = {f["name"]: (f["min"] + f["max"]) / 2 for f in schema}
        for w in (cw, hw):  # warm up: first calls pay for lazy imports and caches
            for _ in range(50):
                assert w.predict([row]).ok
        sequential = {
            "container": _median(lambda: _rate(lambda: cw.predict([row]), n)),
            "host": _median(lambda: _rate(lambda: hw.predict([row]), n)),
            "parity (both)": _median(lambda: _rate(lambda: ask_both(cw, hw, [row]), n)),
        }
        pipelined = {
            "container": _median(lambda: _pipelined((cw,), row, n)),
            "host": _median(lambda: _pipelined((hw,), row, n)),
            "parity (both)": _median(lambda: _pipelined((cw, hw), row, n)),
        }
        # The naive way: one exec of the predict CLI per example, in the same container.
        wd = config.run.workdir_in_image
        container.box.put_files(f"{wd}/bench", {"row.jsonl": (json.dumps(row) + "\n").encode()})
        command = ["python", "-m", "ml_project.predict", "--model", f"{wd}/out", "--input", f"{wd}/bench/row.jsonl",
                   "--out", f"{wd}/bench/pred.jsonl"]
        times = []
        for _ in range(EXECS):
            start = time.perf_counter()
            result = container.box.exec(command, timeout=120)
            times.append(time.perf_counter() - start)
            assert result.exit_code == 0, result.output
        docker_exec = 1 / statistics.median(times)
    result = {
        "sequential": sequential,
        "pipelined": pipelined,
        "docker_exec": docker_exec,
        "ratio": sequential["parity (both)"] / docker_exec,
        "n": n,
        "rounds": ROUNDS,
        "window": WINDOW,
        "execs": EXECS,
    }
    if show:
        print(render(result))
    return result


def render(result: dict) -> str:
    lines = [
        "single-row examples/s (median of rounds)   sequential   pipelined",
        *(f"  {name:<40} {result['sequential'][name]:>10.0f}   {result['pipelined'][name]:>9.0f}" for name in result["sequential"]),
        f"  {'docker exec ml_project.predict':<40} {result['docker_exec']:>10.2f}",
        f"  parity examples via workers / via docker exec: {result['ratio']:.0f}x",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    run()
