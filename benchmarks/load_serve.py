"""Load test of the decision service on loopback: concurrent clients posting single decisions, then one big batch.

    python benchmarks/load_serve.py [--clients 16] [--seconds 10] [--batch 10000]

Starts `pyxl-del serve` on a free loopback port (a subprocess, with a throwaway key, the scored sample's twin),
runs ``clients`` threads with keep-alive connections for ``seconds`` seconds, each posting one application at a
time, and prints p50 / p99 latency, throughput and errors; then times one request of ``batch`` applications.
Bounded in time and count, loopback only. tests/test_serve.py runs a short version of `run_load`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

SEGMENTS = ("CASH LOAN", "CD", "TW/Moto")


def applications(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"application_id": f"A{i}", "segment": SEGMENTS[i % 3], "score": float(s), "amount": float(a)}
            for i, (s, a) in enumerate(zip(rng.normal(600, 50, n).round(), rng.lognormal(9.5, 0.4, n).round(2),
                                           strict=True))]


def post(conn: http.client.HTTPConnection, key: str, body: bytes, path: str = "/v1/decisions"):
    conn.request("POST", path, body=body, headers={"X-API-Key": key, "Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def run_load(url: str, key: str, clients: int, seconds: float, max_requests: int = 1_000_000) -> dict:
    """``clients`` threads posting single applications for ``seconds`` (at most ``max_requests`` in all)."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    assert host in ("127.0.0.1", "localhost", "::1"), "load tests run on loopback only"
    bodies = [json.dumps(a).encode() for a in applications(512)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    stop = time.perf_counter() + seconds
    budget = threading.Semaphore(max_requests)

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        k = i
        while time.perf_counter() < stop and budget.acquire(blocking=False):
            started = time.perf_counter()
            try:
                status, _ = post(conn, key, bodies[k % len(bodies)])
            except OSError as exc:
                errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                continue
            latencies[i].append(time.perf_counter() - started)
            if status != 200:
                errors.append(f"HTTP {status}")
            k += clients
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    all_ms = np.concatenate([np.asarray(x) for x in latencies]) * 1000
    return {"requests": len(all_ms), "errors": errors, "seconds": elapsed, "throughput": len(all_ms) / elapsed,
            "p50_ms": float(np.percentile(all_ms, 50)), "p99_ms": float(np.percentile(all_ms, 99)),
            "max_ms": float(all_ms.max())}


def time_batch(url: str, key: str, n: int) -> tuple[float, int]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    body = json.dumps({"applications": applications(n, seed=1)}).encode()
    post(conn, key, json.dumps(applications(1)[0]).encode())  # warm connection
    started = time.perf_counter()
    status, content = post(conn, key, body)
    elapsed = time.perf_counter() - started
    conn.close()
    assert status == 200, content[:300]
    return elapsed, len(json.loads(content)["decisions"])


def start_server(args: list[str], key: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    """`pyxl-del serve --port 0 ...` as a subprocess; returns it and its URL once it listens."""
    env = {**os.environ, "PYXL_DEL_API_KEY": key}
    proc = subprocess.Popen([sys.executable, "-m", "pyxl_del.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    line = proc.stdout.readline()
    if not line.startswith("pyxl-del serve: http://"):
        proc.kill()
        raise RuntimeError(f"server did not start: {line}{proc.stderr.read()}")
    return proc, line.split()[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    key = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(["--log", str(Path(tmp) / "served.jsonl")], key, Path(tmp))
        try:
            r = run_load(url, key, args.clients, args.seconds)
            print(f"{args.clients} clients x {args.seconds:g} s: {r['requests']:,} single decisions, "
                  f"{len(r['errors'])} errors, {r['throughput']:,.0f} requests/s, p50 {r['p50_ms']:.1f} ms, "
                  f"p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms")
            elapsed, n = time_batch(url, key, args.batch)
            print(f"one request of {n:,} applications: {elapsed * 1000:.0f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
