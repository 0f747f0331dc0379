"""taskmill against the Python peers on Redis: one worker process each, no-op jobs doing one INCR.

Run ``bench/peers/run.sh [--jobs 10000] [--rounds 3] [--quick] [--only taskmill,huey]``
(or this file with Python 3.11). Needs ``redis-server`` on ``PATH`` and PyPI access the
first time. Only the standard library is used here; each contestant gets its own
virtualenv under ``bench/peers/.venv/<name>`` with the versions pinned in
``bench/peers/requirements/<name>.txt`` (``--refresh-pins`` installs the newest releases
and rewrites those files), so peer dependencies never enter the project's virtualenv and
peers that want different redis-py versions (arq < 6, SAQ < 8) each get the one they ask
for. taskmill is installed editable from this checkout.

One private ``redis-server`` (loopback, free port, persistence off) serves every run.
Per contestant and round: ``FLUSHALL``; the contestant's own client enqueues N jobs
(untimed, except taskmill's submit rates); ONE worker process is started with the
contestant's own CLI; the time from starting it until the counter key reaches N is
measured by polling ``GET`` every 2 ms, with the CPU (user + sys) of the worker's whole
process tree read from ``/proc``; then the worker is killed. Rounds are interleaved
(every contestant once per round); the table shows medians. Memory per queued task:
``FLUSHALL``, enqueue ``--memory-jobs`` jobs with a 100-byte string argument, and the
change of ``INFO memory`` ``used_memory_dataset`` divided by the job count.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
APPS = HERE / "apps"
VENVS = HERE / ".venv"
PINS = HERE / "requirements"
COUNTER = b"bench:counter"
POLL = 0.002
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Contestant:
    """One row: the virtualenv it runs in, its worker command and how it is set up."""

    name: str
    env: str
    app: str
    worker: tuple[str, ...]
    settings: str
    dist: str


# {bin} is the contestant's virtualenv bin directory, {url} the Redis URL.
CONTESTANTS = (
    Contestant(
        "taskmill",
        "taskmill",
        "taskmill",
        (
            *("{bin}/taskmill", "worker", "taskmill_app:registry"),
            *("--redis", "{url}", "--concurrency", "100"),
        ),
        "`taskmill worker --concurrency 100` (asyncio)",
        "taskmill",
    ),
    Contestant(
        "baseline",
        "taskmill",
        "baseline",
        ("{bin}/python", "baseline_app.py"),
        "no queue: 100 coroutines doing the INCRs (redis-py asyncio)",
        "redis",
    ),
    Contestant(
        "huey",
        "huey",
        "huey",
        ("{bin}/huey_consumer", "huey_app.huey", "--workers", "8", "--worker-type", "thread"),
        "`huey_consumer -w 8 -k thread`",
        "huey",
    ),
    Contestant(
        "dramatiq",
        "dramatiq",
        "dramatiq",
        ("{bin}/dramatiq", "dramatiq_app", "--processes", "1", "--threads", "8"),
        "`dramatiq -p 1 -t 8`",
        "dramatiq",
    ),
    Contestant(
        "taskiq",
        "taskiq",
        "taskiq",
        ("{bin}/taskiq", "worker", "taskiq_app:broker", "--workers", "1"),
        "`taskiq worker -w 1` (ListQueueBroker, max-async-tasks 100)",
        "taskiq",
    ),
    Contestant(
        "arq",
        "arq",
        "arq",
        ("{bin}/arq", "arq_app.WorkerSettings"),
        "`arq`, `max_jobs = 100`",
        "arq",
    ),
    Contestant(
        "SAQ",
        "saq",
        "saq",
        ("{bin}/saq", "saq_app.settings", "--workers", "1"),
        "`saq --workers 1`, `concurrency 100`",
        "saq",
    ),
    Contestant(
        "celery",
        "celery",
        "celery",
        ("{bin}/celery", "-A", "celery_app", "worker", "--pool", "threads", "--concurrency", "8"),
        "`celery worker --pool threads -c 8`",
        "celery",
    ),
    Contestant(
        "rq (no fork)",
        "rq",
        "rq",
        ("{bin}/rq", "worker", "--url", "{url}", "-w", "rq.worker.SimpleWorker", "bench"),
        "`rq worker -w rq.worker.SimpleWorker`",
        "rq",
    ),
    Contestant(
        "rq (fork)",
        "rq",
        "rq",
        ("{bin}/rq", "worker", "--url", "{url}", "bench"),
        "`rq worker` (forks per job)",
        "rq",
    ),
)

# What each virtualenv installs when its pins are (re)made; hiredis everywhere for parity.
REQUIREMENTS = {
    "taskmill": ["hiredis"],
    "huey": ["huey", "redis", "hiredis"],
    "dramatiq": ["dramatiq[redis]", "hiredis"],
    "taskiq": ["taskiq", "taskiq-redis", "hiredis"],
    "arq": ["arq", "hiredis"],
    "saq": ["saq[redis]", "typing-extensions", "hiredis"],  # saq forgets to require it
    "celery": ["celery[redis]", "hiredis"],
    "rq": ["rq", "hiredis"],
}


class BenchError(Exception):
    """A contestant could not be set up or run."""


# ------------------------------------------------------------------ a tiny Redis client


class Resp:
    """A blocking RESP2 client, just enough for GET, FLUSHALL and INFO."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rb")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __call__(self, *args: str | bytes | int) -> Any:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts += [b"$%d\r\n" % len(data), data, b"\r\n"]
        self._sock.sendall(b"".join(parts))
        return self._read()

    def _read(self) -> Any:
        line = self._file.readline()
        if not line:
            raise BenchError("redis-server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise BenchError(f"redis error: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._file.read(size + 2)[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._read() for _ in range(size)]
        raise BenchError(f"unexpected reply from redis-server: {line!r}")

    def counter(self) -> int:
        value = self("GET", COUNTER)
        return 0 if value is None else int(value)

    def dataset_bytes(self) -> int:
        info: bytes = self("INFO", "memory")
        for line in info.decode().splitlines():
            if line.startswith("used_memory_dataset:"):
                return int(line.split(":", 1)[1])
        raise BenchError("INFO memory has no used_memory_dataset")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server(directory: Path) -> Any:
    """Start a private redis-server on a free loopback port; yield its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not on PATH (apt-get install redis-server)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(directory)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                Resp(port).close()
                break
            except OSError:
                time.sleep(0.01)
        else:
            raise BenchError("redis-server did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait()


# ------------------------------------------------------------------ virtualenvs


def env_bin(env: str) -> Path:
    return VENVS / env / "bin"


def pip(env: str, *args: str) -> None:
    cmd = [
        str(env_bin(env) / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    result = subprocess.run([*cmd, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"pip install into {env} failed:\n{result.stderr[-3000:]}")


def stamp_of(pins: Path) -> str:
    """What an up-to-date virtualenv was made from: its pins, this checkout, this Python."""
    content = pins.read_bytes() if pins.exists() else b""
    return hashlib.sha256(content + str(REPO).encode() + sys.version.encode()).hexdigest()


def ensure_env(env: str, *, refresh: bool) -> None:
    """Create ``.venv/<env>`` and install its pinned requirements (or the newest, with refresh)."""
    pins = PINS / f"{env}.txt"
    editable = [f"{REPO}[redis,cli]"] if env == "taskmill" else []
    stamp = VENVS / env / ".bench-stamp"
    wanted = stamp_of(pins)
    if not refresh and stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"setting up {VENVS / env} ...", file=sys.stderr)
    if not (env_bin(env) / "python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENVS / env)
    if refresh or not pins.exists():
        pip(env, "--upgrade", *REQUIREMENTS[env], *(["-e", editable[0]] if editable else []))
        frozen = subprocess.run(
            [str(env_bin(env) / "python"), "-m", "pip", "freeze", "--exclude-editable"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        header = f"# bench/peers: the {env} contestant's virtualenv (run.py --refresh-pins)\n"
        PINS.mkdir(exist_ok=True)
        pins.write_text(header + frozen)
        wanted = stamp_of(pins)
    else:
        pip(env, "-r", str(pins))
        if editable:
            pip(env, "--no-deps", "-e", editable[0])
    stamp.write_text(wanted)


def version_of(env: str, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run(
        [str(env_bin(env) / "python"), "-c", code], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "?"


# ------------------------------------------------------------------ measuring


def tree_cpu(session: int) -> float:
    """CPU seconds (user + sys, own + reaped children) of every process in ``session``."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[3]) == session:
            ticks += sum(int(x) for x in fields[11:15])
    return ticks / CLOCK_TICKS


def app_env(url: str, count: int = 0) -> dict[str, str]:
    env = dict(os.environ, BENCH_REDIS_URL=url, PYTHONPATH=str(APPS), PYTHONUNBUFFERED="1")
    env["BENCH_JOBS"] = str(count)
    env.pop("VIRTUAL_ENV", None)
    return env


def enqueue(c: Contestant, url: str, count: int, payload: int, *extra: str) -> dict[str, Any]:
    cmd = [str(env_bin(c.env) / "python"), str(APPS / "enqueue.py"), c.app, str(count)]
    result = subprocess.run(
        [*cmd, str(payload), *extra],
        cwd=APPS,
        env=app_env(url),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise BenchError(f"{c.name}: enqueue failed:\n{result.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def drain(
    c: Contestant, url: str, redis: Resp, count: int, *, timeout: float, log: Path
) -> dict[str, Any]:
    """Start one worker, time it until the counter reaches ``count``, kill it."""
    cmd = [part.format(bin=env_bin(c.env), url=url) for part in c.worker]
    with log.open("ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=APPS, env=app_env(url, count), stdout=out, stderr=out, start_new_session=True
        )
    first: tuple[float, int, float] | None = None
    done = 0
    try:
        while True:
            done = redis.counter()
            now = time.perf_counter()
            if first is None and done > 0:
                first = (now, done, tree_cpu(proc.pid))
            if done >= count or now - started > timeout:
                cpu = tree_cpu(proc.pid)
                break
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise BenchError(f"{c.name}: worker exited with {proc.returncode}:\n{tail}")
            time.sleep(POLL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    elapsed = now - started
    row: dict[str, Any] = {
        "done": done,
        "timed_out": done < count,
        "rate": done / elapsed,
        "cpu_us": cpu / max(done, 1) * 1e6,
        "steady_rate": None,
        "steady_cpu_us": None,
    }
    if first is not None and done > first[1] and now > first[0]:
        row["steady_rate"] = (done - first[1]) / (now - first[0])
        row["steady_cpu_us"] = (cpu - first[2]) / (done - first[1]) * 1e6
    return row


def measure_memory(c: Contestant, url: str, redis: Resp, count: int) -> float:
    redis("FLUSHALL")
    before = redis.dataset_bytes()
    enqueue(c, url, count, 100)
    return (redis.dataset_bytes() - before) / count


# ------------------------------------------------------------------ reporting


def med(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(results: dict[str, dict[str, Any]], count: int) -> str:
    base = med([r["rate"] for r in results.get("taskmill", {}).get("rounds", [])])
    lines = [
        (
            "| contestant | version | worker (one process) | jobs/s | vs taskmill | "
            "jobs/s after 1st job | CPU µs/job | CPU µs/job after 1st | bytes/queued task |"
        ),
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in CONTESTANTS:
        r = results.get(c.name)
        if r is None:
            continue
        if "error" in r:
            lines.append(
                f"| {c.name} | {r['version']} | {c.settings} | not run: {r['error']} |||||"
            )
            continue
        rounds = r["rounds"]
        rate = med([x["rate"] for x in rounds])
        note = ""
        if any(x["timed_out"] for x in rounds):
            note = f" (timed out: {min(x['done'] for x in rounds):,} of {count:,} done)"
        ratio = "—" if base is None or rate is None else f"{rate / base:.3f}"
        lines.append(
            f"| {c.name} | {r['version']} | {c.settings} | {fmt(rate)}{note} | {ratio} | "
            f"{fmt(med([x['steady_rate'] for x in rounds]))} | "
            f"{fmt(med([x['cpu_us'] for x in rounds]))} | "
            f"{fmt(med([x['steady_cpu_us'] for x in rounds]))} | {fmt(r.get('memory'))} |"
        )
    return "\n".join(lines)


def last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-jobs", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per worker run")
    parser.add_argument("--quick", action="store_true", help="2,000 jobs, 1 round (smoke)")
    parser.add_argument("--only", default="", help="comma-separated contestant names")
    parser.add_argument("--refresh-pins", action="store_true", help="install newest, re-pin")
    parser.add_argument("--setup-only", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.rounds, args.memory_jobs = 2_000, 1, 2_000
    wanted = {n.strip().lower() for n in args.only.split(",") if n.strip()}
    args.chosen = [
        c for c in CONTESTANTS if not wanted or c.name.lower() in wanted or c.env in wanted
    ]
    if not args.chosen:
        parser.error(f"--only matches none of {[c.name for c in CONTESTANTS]}")
    return args


def setup(chosen: list[Contestant], *, refresh: bool) -> dict[str, dict[str, Any]]:
    """Make every virtualenv; a contestant whose install fails gets an ``error``."""
    results: dict[str, dict[str, Any]] = {}
    for env in dict.fromkeys(c.env for c in chosen):
        try:
            ensure_env(env, refresh=refresh)
        except BenchError as exc:
            print(exc, file=sys.stderr)
            for c in chosen:
                if c.env == env:
                    results[c.name] = {"version": "?", "error": last_line(exc)}
    for c in chosen:
        if c.name not in results:
            version = version_of(c.env, c.dist)
            if c.dist != c.env:
                version = f"redis-py {version}"
            results[c.name] = {"version": version, "rounds": []}
    return results


def one_round(
    args: argparse.Namespace, results: dict[str, dict[str, Any]], redis: Resp, url: str, tmp: Path
) -> list[dict[str, float]]:
    """Run every contestant once; return taskmill's submit rates (if it ran)."""
    submit: list[dict[str, float]] = []
    for c in args.chosen:
        r = results[c.name]
        if "error" in r:
            continue
        try:
            if c.name == "taskmill":
                redis("FLUSHALL")
                submit.append(enqueue(c, url, args.jobs, 0, "--submit-rates"))
            redis("FLUSHALL")
            enqueue(c, url, args.jobs, 0)
            row = drain(c, url, redis, args.jobs, timeout=args.timeout, log=tmp / f"{c.env}.log")
        except (BenchError, subprocess.TimeoutExpired) as exc:
            r["error"] = last_line(exc)
            print(f"{c.name}: {exc}", file=sys.stderr)
            continue
        r["rounds"].append(row)
        print(
            f"{c.name:<13} {row['rate']:>9,.0f} jobs/s (after 1st: {fmt(row['steady_rate'])}/s)"
            f"  CPU {row['cpu_us']:,.0f} µs/job",
            file=sys.stderr,
        )
    return submit


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the worker and redis-server are cleaned up


def main() -> int:
    signal.signal(signal.SIGTERM, _terminated)
    args = parse_args()
    results = setup(args.chosen, refresh=args.refresh_pins)
    if args.setup_only:
        return 0
    submit: list[dict[str, float]] = []
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="taskmill-peers-") as tmp,
        redis_server(Path(tmp)) as port,
    ):
        url = f"redis://127.0.0.1:{port}/0"
        redis = Resp(port)
        server = redis("INFO", "server").decode().split("redis_version:")[1].split()[0]
        print(f"redis-server {server} on {url}; {args.jobs:,} jobs", file=sys.stderr)
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no} of {args.rounds}", file=sys.stderr)
            submit += one_round(args, results, redis, url, Path(tmp))
        for c in args.chosen:
            if "error" not in results[c.name] and c.app != "baseline":
                try:
                    results[c.name]["memory"] = measure_memory(c, url, redis, args.memory_jobs)
                except BenchError as exc:
                    print(f"{c.name}: memory: {exc}", file=sys.stderr)
        redis.close()
    load_after = os.getloadavg()
    print(
        f"{args.jobs:,} jobs (one INCR each), one worker process each, median of {args.rounds}; "
        f"bytes/queued task: {args.memory_jobs:,} jobs with a 100-byte argument; "
        f"redis-server {server}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print()
    print(table(results, args.jobs))
    if submit:
        rates = ", ".join(
            f"{key} {statistics.median(s[key] for s in submit):,.0f}/s"
            for key in submit[0]
            if key != "seconds"
        )
        print(f"\ntaskmill submit rates ({args.jobs:,} jobs, median of rounds): {rates}")
    if args.json:
        raw = {"jobs": args.jobs, "results": results, "submit": submit}
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
