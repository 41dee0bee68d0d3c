"""Benchmark of the generated project's MQTT data paths: `python3 bench/run.py [--runs 5]` (or `make bench`).

Needs only Python 3 to start: it creates (or reuses) a venv with cookiecutter and the project's pinned
requirements, bakes a project with the default answers into a temporary directory and hands over to
measure.py, which starts the services as processes against the local PostgreSQL and Redis and its own
Mosquitto. Prints a table and writes the figures as JSON. Not part of any test suite: figures, no assertions.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
TEMPLATE = BENCH_DIR.parent
DEFAULT_VENV = TEMPLATE / ".cache" / "bench-venv"
COOKIECUTTER = "cookiecutter==2.7.1"


def log(message: str) -> None:
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return python


def install_once(python: Path, requirements: list[str], stamp_name: str, fingerprint: str = "") -> None:
    """pip install, skipped when the same requirements (or the same fingerprint: a lock's text, as the bake
    holding the lock is new each run) were installed into this venv before."""
    digest = hashlib.sha256((fingerprint or "\n".join(requirements)).encode()).hexdigest()
    stamp = python.parent.parent / f".{stamp_name}.{digest[:16]}"
    if stamp.exists():
        return
    log(f"installing {stamp_name} requirements into {python.parent.parent}")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements], check=True)
    stamp.touch()


def bake(python: Path, out: Path) -> Path:
    subprocess.run(
        [str(python), "-m", "cookiecutter", "--no-input", "-f", "-o", str(out), str(TEMPLATE)], check=True
    )
    (project,) = [path for path in out.iterdir() if (path / "src" / "manage.py").exists()]
    return project


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="repeat every measurement; medians are reported (5)"
    )
    parser.add_argument("--messages", type=int, default=20_000, help="messages per throughput measurement")
    parser.add_argument(
        "--venv", type=Path, default=DEFAULT_VENV, help=f"venv to create or reuse (default {DEFAULT_VENV})"
    )
    parser.add_argument(
        "--json", type=Path, help="where to write the figures (default .cache/bench/<time>.json)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the baked project and the service logs")
    args = parser.parse_args()
    if args.runs < 1 or args.messages < 100:
        parser.error("--runs must be >= 1 and --messages >= 100")

    python = ensure_venv(args.venv)
    install_once(python, [COOKIECUTTER], "cookiecutter")
    out = Path(tempfile.mkdtemp(prefix="iot-bench-bake-"))
    try:
        project = bake(python, out)
        lock = project / "requirements.txt"
        install_once(python, ["--require-hashes", "-r", str(lock)], "project", lock.read_text())
        json_path = args.json or TEMPLATE / ".cache" / "bench" / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
        command = [
            str(python),
            str(BENCH_DIR / "measure.py"),
            "--project",
            str(project),
            "--runs",
            str(args.runs),
            "--messages",
            str(args.messages),
            "--json",
            str(json_path.resolve()),
        ]
        if args.keep:
            command.append("--keep")
        return subprocess.run(command, env=dict(os.environ), check=False).returncode
    finally:
        if args.keep:
            log(f"kept the baked project in {out}")
        else:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
