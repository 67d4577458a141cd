"""Benchmarks: the harness against the bare Docker workflow and the physical limits.

Run on demand (`make bench`), never as tests: machines are noisy, so every figure
is the median of several runs and every comparison is a ratio of two figures
measured in the same run, one after the other. Prints a table and writes
`benchmarks/results.json`; the README's performance section quotes it.

    python benchmarks/run.py [--runs N] [--only NAME ...] [--suite]

Figures: cold build (harness vs `docker build`, both without cache), warm verify
(image cached) vs a plain `docker run` of the same train and predict, parity
throughput through the persistent workers, final image size vs base + venv,
wheelhouse fetch cold and warm, lock check and refresh, a rebuild check vs one cold
build (`rebuild`), `mlrepro compare` on a pair of ~200 MB prediction CSVs vs `cmp` and
pandas + numpy (`compare`, no engine: `--only compare` neither connects nor builds), and
(with --suite) the wall time of the whole test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from harness.config import load_config  # noqa: E402
from harness.docker.engine import Engine  # noqa: E402
from harness.lock import read_lock  # noqa: E402
from harness.verify import prepare  # noqa: E402
from harness.image.wheelhouse import Target, fetch  # noqa: E402

console = Console(stderr=True)
MLREPRO = [sys.executable, "-m", "harness.cli"]


def timed(command: list[str], **kwargs) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(command)}\n{proc.stderr[-2000:]}")
    return elapsed


def median_of(runs: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    samples = [fn() for _ in range(runs)]
    return statistics.median(samples), samples


def bench_cold_build(runs: int, engine: Engine, image) -> dict:
    """`mlrepro build --no-cache` vs `docker build --no-cache` of the same Dockerfile and args."""
    from harness.image.build import build_args

    config = load_config(ROOT)
    args = build_args(config, read_lock(config.lock), image.base_image)
    plain = ["docker", "build", "-q", "--no-cache", "-t", "mlrepro-bench/plain:cold", "-f", str(config.build.dockerfile)]
    for key, value in args.items():
        plain += ["--build-arg", f"{key}={value}"]
    plain.append(str(config.build.context))
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the same (legacy) builder the harness gets from docker-py
    harness_s, harness_all, plain_s, plain_all = [], [], [], []
    for _ in range(runs):  # interleaved, so drift in machine load hits both alike
        harness_all.append(timed([*MLREPRO, "build", "--no-cache"], cwd=ROOT))
        plain_all.append(timed(plain, env=env))
    harness_s, plain_s = statistics.median(harness_all), statistics.median(plain_all)
    subprocess.run(["docker", "image", "rm", "-f", "mlrepro-bench/plain:cold"], capture_output=True)
    return {"harness_s": harness_s, "plain_s": plain_s, "ratio": harness_s / plain_s, "target": "<= 1.1",
            "samples": {"harness": harness_all, "plain": plain_all}}


def bench_warm_verify(runs: int, engine: Engine, image) -> dict:
    """`mlrepro verify` with the image cached vs `docker run` of the same train and predict."""
    config = load_config(ROOT)
    script = " && ".join([
        "python -m ml_project.train --out /tmp/o",
        "python -m ml_project.predict --model /tmp/o --input /in/holdout.csv --out /tmp/o/predictions.csv",
    ])
    plain = ["docker", "run", "--rm", "--network", "none", "-v", f"{ROOT / 'examples'}:/in:ro", image.tag, "sh", "-c", script]
    harness_all, plain_all = [], []
    timed([*MLREPRO, "verify"], cwd=ROOT)  # warm-up: image and wheelhouse in place
    for _ in range(runs):
        harness_all.append(timed([*MLREPRO, "verify"], cwd=ROOT))
        plain_all.append(timed(plain))
    harness_s, plain_s = statistics.median(harness_all), statistics.median(plain_all)
    return {"harness_s": harness_s, "plain_s": plain_s, "ratio": harness_s / plain_s, "target": "<= 1.5",
            "samples": {"harness": harness_all, "plain": plain_all}, "steps": [s.name for s in config.steps]}


def bench_image_size(runs: int, engine: Engine, image) -> dict:
    """Final image vs base image + installed venv + project files (what it must hold)."""
    size = engine.image_attrs(image.tag)["Size"]
    base = engine.image_attrs(image.base_image_id)["Size"]
    with engine.container(image.tag, role="bench") as box:
        du = box.exec(["du", "-sb", "/opt/venv", "/app"], timeout=60).output.split()
    payload = int(du[0]) + int(du[2])
    floor = base + payload
    return {"image_bytes": size, "base_bytes": base, "venv_and_app_bytes": payload, "ratio": size / floor, "target": "<= 1.05"}


def bench_wheelhouse(runs: int, engine: Engine, image) -> dict:
    config = load_config(ROOT)
    lock = read_lock(config.lock)
    target = Target(config.wheelhouse.python_version, engine.architecture(), config.wheelhouse.glibc)
    cold, warm = [], []
    for _ in range(runs):
        tmp = Path(tempfile.mkdtemp(prefix="mlrepro-bench-"))
        try:
            start = time.perf_counter()
            fetch(tmp / "wheelhouse", config.lock, lock, target, progress=lambda m: None)
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            assert not fetch(tmp / "wheelhouse", config.lock, lock, target, progress=lambda m: None)
            warm.append(time.perf_counter() - start)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"cold_s": statistics.median(cold), "warm_s": statistics.median(warm), "samples": {"cold": cold, "warm": warm},
            "note": "cold = pip download of every locked wheel (served from pip's cache/index on this machine)"}


def bench_lock(runs: int, engine: Engine, image) -> dict:
    check, _ = median_of(runs, lambda: timed([*MLREPRO, "lock", "--check"], cwd=ROOT))
    return {"check_s": check}


def bench_parity(runs: int, engine: Engine, image) -> dict:
    try:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import bench_parity  # type: ignore[import-not-found]
    except ImportError:
        return {"skipped": "benchmarks/bench_parity.py not available"}
    return bench_parity.run()


def bench_rebuild(runs: int, engine: Engine, image) -> dict:
    """`mlrepro rebuild-check` (two no-cache builds, two exports hashed, the comparison) vs one `mlrepro build --no-cache`."""
    check_all, cold_all = [], []
    for _ in range(runs):  # interleaved, so drift in machine load hits both alike
        cold_all.append(timed([*MLREPRO, "build", "--no-cache"], cwd=ROOT))
        check_all.append(timed([*MLREPRO, "rebuild-check"], cwd=ROOT))  # exit 1 (DIFFERS) aborts: the tree must rebuild identically
    check_s, cold_s = statistics.median(check_all), statistics.median(cold_all)
    return {"check_s": check_s, "cold_build_s": cold_s, "ratio": check_s / cold_s, "target": "<= 2.5",
            "samples": {"check": check_all, "cold_build": cold_all}}


def bench_suite(runs: int, engine: Engine, image) -> dict:
    seconds = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=ROOT)
    return {"wall_s": seconds, "target": "<= 900"}


# ---------------------------------------------------------------- compare

#: The interpreter for the pandas baseline: pandas must never go into the project's venv
#: (the host side computes with its versions), so a throwaway venv:
#: `python3 -m venv /tmp/bench-pandas-venv && /tmp/bench-pandas-venv/bin/pip install pandas numpy`.
PANDAS_PYTHON = os.environ.get("MLREPRO_BENCH_PANDAS_PYTHON", "/tmp/bench-pandas-venv/bin/python")
_PANDAS_BASELINE = """
import sys
import numpy as np
import pandas as pd
a, b = pd.read_csv(sys.argv[1]), pd.read_csv(sys.argv[2])
same = list(a.columns) == list(b.columns) and len(a) == len(b)
if same:
    num = list(a.select_dtypes("number").columns)
    same = (bool(np.allclose(a[num].to_numpy(), b[num].to_numpy(), rtol=0.0, atol=0.0, equal_nan=True))
            and a.drop(columns=num).equals(b.drop(columns=num)))
print("equal" if same else "differs")
sys.exit(0 if same else 1)
"""


def _prediction_csvs(folder: Path, rows: int = 1_000_000, floats: int = 10) -> dict:
    """image.csv, host-same.csv (a byte copy) and host-differs.csv (1 in 7 rows: one float + 1e-12)."""
    import numpy as np

    rng = np.random.default_rng(15)
    labels = ("setosa", "versicolor", "virginica")
    header = "id," + ",".join(f"score_{j}" for j in range(floats)) + ",label\n"
    changed = 0
    with open(folder / "image.csv", "w") as image, open(folder / "host-differs.csv", "w") as host:
        image.write(header)
        host.write(header)
        for start in range(0, rows, 50_000):
            block = rng.random((min(50_000, rows - start), floats)).tolist()
            kinds = rng.integers(0, 3, len(block)).tolist()
            lines_i, lines_h = [], []
            for k, (values, kind) in enumerate(zip(block, kinds)):
                i = start + k
                cells = ["%.17g" % v for v in values]   # 17 significant digits, as float repr can need
                line = f"{i},{','.join(cells)},{labels[kind]}"
                lines_i.append(line)
                if i % 7 == 3:
                    j = (i // 7) % floats
                    cells[j] = "%.17g" % (values[j] + 1e-12)
                    line = f"{i},{','.join(cells)},{labels[kind]}"
                    changed += 1
                lines_h.append(line)
            image.write("\n".join(lines_i) + "\n")
            host.write("\n".join(lines_h) + "\n")
    shutil.copyfile(folder / "image.csv", folder / "host-same.csv")
    return {"rows": rows, "float_columns": floats, "rows_changed": changed,
            "bytes": (folder / "image.csv").stat().st_size}


def _time_v(command: list[str], expect: int) -> dict:
    """Wall seconds and peak RSS (GNU time -v) of one command; its exit code must be `expect`."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"benchmark command exited {proc.returncode}, expected {expect}: {' '.join(command)}\n"
                         f"{proc.stdout[-1000:]}{proc.stderr[-2000:]}")
    rss = [line for line in proc.stderr.splitlines() if "Maximum resident set size" in line]
    return {"s": seconds, "rss_mb": int(rss[-1].split(":")[-1]) * 1024 / 1e6, "out": proc.stdout.strip()}


def bench_compare(runs: int, engine: Engine | None, image) -> dict:
    """`mlrepro compare --mode numeric` on a ~200 MB prediction CSV pair vs `cmp` and pandas + numpy.

    No engine, no image. In a temp dir (removed at the end): 1,000,000 rows of an id, 10 floats
    with 17 significant digits and a text label; compared once with a byte copy (baseline `cmp`)
    and once with a copy where 1 in 7 rows has one float changed by 1e-12 (baseline pandas
    `read_csv` of both + numpy `allclose` of the numeric columns, in the interpreter
    PANDAS_PYTHON, never the project's venv). mlrepro compare runs with its default tolerance,
    atol=0 rtol=0, so every changed row differs (exit 1): the slow path, not a tolerance pass.
    MB/s = size of one file / wall seconds of the whole command (interpreter start included),
    files in the page cache; median of `runs`, the four commands interleaved in each run.
    Peak RSS from `/usr/bin/time -v` (GNU time; on Debian `apt-get install time` if it is missing).
    """
    if not Path("/usr/bin/time").exists():
        return {"skipped": "/usr/bin/time missing: apt-get install time"}
    pandas_ok = subprocess.run([PANDAS_PYTHON, "-c", "import pandas, numpy"], capture_output=True).returncode == 0 \
        if Path(PANDAS_PYTHON).exists() else False
    tmp = Path(tempfile.mkdtemp(prefix="mlrepro-bench-compare-"))
    try:
        data = _prediction_csvs(tmp)
        a, same, differs = (str(tmp / n) for n in ("image.csv", "host-same.csv", "host-differs.csv"))
        compare = [*MLREPRO, "compare", "--mode", "numeric"]
        samples: dict[str, list[dict]] = {"identical": [], "cmp": [], "differs": [], "pandas": []}
        for _ in range(runs):  # interleaved, so drift in machine load hits all alike
            samples["identical"].append(_time_v([*compare, a, same], expect=0))
            samples["cmp"].append(_time_v(["cmp", a, same], expect=0))
            samples["differs"].append(_time_v([*compare, a, differs], expect=1))
            if pandas_ok:
                samples["pandas"].append(_time_v([PANDAS_PYTHON, "-c", _PANDAS_BASELINE, a, differs], expect=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mb = data["bytes"] / 1e6

    def figures(name: str) -> dict:
        seconds = statistics.median(s["s"] for s in samples[name])
        return {"s": seconds, "mb_per_s": mb / seconds, "peak_rss_mb": max(s["rss_mb"] for s in samples[name]),
                "samples_s": [s["s"] for s in samples[name]]}

    result = {"data": {**data, "mb": mb}, "tolerance": "default atol=0 rtol=0 (changed rows differ, exit 1)",
              "identical": {**figures("identical"), "summary": samples["identical"][0]["out"]},
              "cmp": figures("cmp"),
              "differs": {**figures("differs"), "summary": samples["differs"][0]["out"]},
              "target": ">= 100 MB/s differing, >= 300 MB/s identical, peak RSS < 300 MB"}
    result["identical"]["ratio_to_cmp"] = result["identical"]["mb_per_s"] / result["cmp"]["mb_per_s"]
    if pandas_ok:
        result["pandas"] = figures("pandas")
        result["differs"]["ratio_to_pandas"] = result["differs"]["mb_per_s"] / result["pandas"]["mb_per_s"]
    else:
        result["pandas"] = {"skipped": f"no pandas + numpy in {PANDAS_PYTHON} (set MLREPRO_BENCH_PANDAS_PYTHON)"}
    return result


BENCHES = {
    "cold_build": bench_cold_build,
    "warm_verify": bench_warm_verify,
    "parity": bench_parity,
    "image_size": bench_image_size,
    "wheelhouse": bench_wheelhouse,
    "lock": bench_lock,
    "rebuild": bench_rebuild,
    "compare": bench_compare,
    "suite": bench_suite,
}
NO_ENGINE = {"compare"}  # benches that need neither the engine nor the project image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES))
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json")
    opts = parser.parse_args()
    names = opts.only or [n for n in BENCHES if n != "suite" or opts.suite]
    engine, image = None, None
    if any(name not in NO_ENGINE for name in names):
        engine = Engine.connect()
        _, image = prepare(load_config(ROOT), engine, progress=lambda m: None)
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "runs": opts.runs}}
    for name in names:
        console.print(f"[dim]· {name}[/dim]")
        results[name] = BENCHES[name](opts.runs, engine, image)
    table = Table(title=f"mlrepro benchmarks (median of {opts.runs})")
    for column in ("benchmark", "harness / measured", "baseline", "ratio", "target"):
        table.add_column(column)
    for name in names:
        r = results[name]
        if "skipped" in r:
            table.add_row(name, r["skipped"], "", "", "")
        elif name in ("cold_build", "warm_verify"):
            table.add_row(name, f"{r['harness_s']:.2f} s", f"{r['plain_s']:.2f} s (docker)", f"{r['ratio']:.2f}x", r["target"])
        elif name == "image_size":
            table.add_row(name, f"{r['image_bytes'] / 1e6:.1f} MB", f"{(r['base_bytes'] + r['venv_and_app_bytes']) / 1e6:.1f} MB (base + venv + app)", f"{r['ratio']:.3f}x", r["target"])
        elif name == "wheelhouse":
            table.add_row(name, f"warm {r['warm_s'] * 1000:.1f} ms", f"cold {r['cold_s']:.2f} s", "", "")
        elif name == "rebuild":
            table.add_row(name, f"{r['check_s']:.1f} s (rebuild-check)", f"{r['cold_build_s']:.1f} s (one cold build)", f"{r['ratio']:.2f}x", r["target"])
        elif name == "lock":
            table.add_row(name, f"--check {r['check_s']:.2f} s", "", "", "")
        elif name == "parity":
            table.add_row(name, f"{r['sequential']['parity (both)']:.0f} examples/s (both sides, sequential)",
                          f"{r['docker_exec']:.2f}/s (docker exec per example)", f"{r['ratio']:.0f}x", ">= 1000/s")
        elif name == "compare":
            same, diff = r["identical"], r["differs"]
            pandas = r["pandas"]
            table.add_row(f"{name} identical", f"{same['mb_per_s']:.0f} MB/s, RSS {same['peak_rss_mb']:.0f} MB",
                          f"{r['cmp']['mb_per_s']:.0f} MB/s (cmp)", f"{same['ratio_to_cmp']:.2f}x", ">= 300 MB/s, < 300 MB")
            table.add_row(f"{name} 1 in 7 rows differ", f"{diff['mb_per_s']:.0f} MB/s, RSS {diff['peak_rss_mb']:.0f} MB",
                          pandas.get("skipped") or f"{pandas['mb_per_s']:.0f} MB/s, RSS {pandas['peak_rss_mb']:.0f} MB (pandas + allclose)",
                          f"{diff['ratio_to_pandas']:.2f}x" if "ratio_to_pandas" in diff else "", ">= 100 MB/s, < 300 MB")
        elif name == "suite":
            table.add_row(name, f"{r['wall_s'] / 60:.1f} min", "", "", r["target"] + " s")
        else:
            table.add_row(name, json.dumps({k: v for k, v in r.items() if not isinstance(v, (dict, list))})[:120], "", "", "")
    Console().print(table)
    opts.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    shown = opts.out.resolve().relative_to(ROOT) if opts.out.resolve().is_relative_to(ROOT) else opts.out
    console.print(f"[dim]· results written to {shown}[/dim]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
