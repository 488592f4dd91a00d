"""The suite's surroundings: Aim's own virtualenv, the machine description, the load average,
and running one side's workload in a fresh process."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUITE_DIR = Path(__file__).resolve().parent
AP_SIDE = SUITE_DIR / "ap_side.py"
AIM_SIDE = SUITE_DIR / "aim_side.py"
SCALE_SIDE = SUITE_DIR / "scale_side.py"
SIDE_TIMEOUT_S = 3600


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


class SideError(RuntimeError):
    """A workload process failed; the message ends with the tail of its stderr."""


@dataclass(frozen=True)
class SideResult:
    data: dict[str, Any]
    wall_s: float  # the whole process: interpreter start, imports, workload, exit


def side_env() -> dict[str, str]:
    """A side process's environment: byte code written and reused (a `PYTHONDONTWRITEBYTECODE`
    of the calling shell dropped), as in an installed package, whose modules pip compiled when
    it installed them (Aim's are); no progress bars."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TQDM_DISABLE"] = "1"
    return env


def run_side(
    python: Path | str, script: Path, workload: str, params: dict[str, Any], cwd: Path
) -> SideResult:
    """Run `workload` of a side script in a fresh process of `python`; its JSON result."""
    started = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(script), workload, json.dumps(params)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SIDE_TIMEOUT_S,
        env=side_env(),
    )
    wall = time.perf_counter() - started
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SideError(f"{script.name} {workload} exited {proc.returncode}:\n{tail}")
    data: dict[str, Any] = json.loads(lines[-1])
    return SideResult(data, wall)


def _installed_version(python: Path, package: str) -> str | None:
    code = (
        "import importlib.metadata as m, sys\n"
        "try: print(m.version(sys.argv[1]))\n"
        "except m.PackageNotFoundError: print('')"
    )
    try:
        out = subprocess.run(
            [str(python), "-c", code, package], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out or None


def ensure_aim_venv(venv: Path, version: str) -> Path:
    """Aim `version` (plus pandas, which Aim's `dataframe()` needs) in its own virtualenv `venv`,
    created and installed from PyPI the first time, reused afterwards; its python."""
    python = venv / "bin" / "python"
    if (
        python.exists()
        and _installed_version(python, "aim") == version
        and _installed_version(python, "pandas") is not None
    ):
        return python
    started = time.perf_counter()
    if not python.exists():
        log(f"creating {venv} ...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"installing aim=={version} and pandas into {venv} (one time, a few minutes) ...")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"aim=={version}", "pandas"], check=True
    )
    log(f"installed in {time.perf_counter() - started:.0f} s")
    return python


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info(aim_python: Path) -> dict[str, str]:
    """What BENCHMARKS.md states about the machine and the software on both sides."""
    ours = ", ".join(
        f"{p} {_version(p)}" for p in ("aim_parquet", "pyarrow", "numpy", "pandas", "polars")
    )
    theirs = ", ".join(
        f"{p} {_installed_version(aim_python, p) or 'not installed'}"
        for p in ("aim", "aimrocks", "numpy", "pandas")
    )
    return {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} cores",
        "RAM": f"{_ram_gib():.0f} GiB",
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": platform.python_version(),
        "aim_parquet side (.venv)": ours,
        "Aim side (.venv-aim)": theirs,
    }


def load_1min() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(max_load: float, max_wait_s: float, poll_s: float = 30.0) -> tuple[float, float]:
    """Poll the 1-minute load average every `poll_s` until it is below `max_load`, at most
    `max_wait_s`; (seconds waited, load when starting)."""
    started = time.perf_counter()
    while True:
        load = load_1min()
        waited = time.perf_counter() - started
        if load < max_load or waited >= max_wait_s:
            return waited, load
        log(f"1-minute load {load:.2f} >= {max_load}: waiting ({waited / 60:.1f} min so far) ...")
        time.sleep(min(poll_s, max(1.0, max_wait_s - waited)))


def source_fingerprint(package_dir: Path) -> str:
    """A short hash of every `.py` file of the package: shows whether the measured code changed
    while the suite ran (the report says so) and identifies it without git."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(str(path.relative_to(package_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
