"""Fetch uPlot from the npm registry into aim_parquet/ui/static/vendor/uplot/ (run by hand).

    .venv/bin/python tools/vendor_uplot.py [--version 1.6.32]

Uses `npm pack` (the ordinary npm client) to download the published tarball, then copies the
minified browser build, its stylesheet and the MIT licence next to each other, plus a VERSION
file. The result is committed, so installing aim_parquet needs no Node. Re-run it to upgrade.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "aim_parquet" / "ui" / "static" / "vendor" / "uplot"
DEFAULT_VERSION = "1.6.32"
FILES = {
    "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
    "package/dist/uPlot.min.css": "uPlot.min.css",
    "package/LICENSE": "LICENSE",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=DEFAULT_VERSION, help="uplot version on npm")
    args = parser.parse_args(argv)
    npm = shutil.which("npm")
    if npm is None:
        sys.stderr.write("vendor_uplot: npm is not installed (apt-get install -y npm)\n")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [npm, "pack", f"uplot@{args.version}", "--silent"],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        )
        tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
        DEST.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as tar:
            for member, name in FILES.items():
                source = tar.extractfile(member)
                if source is None:
                    sys.stderr.write(f"vendor_uplot: {member} missing from {tarball.name}\n")
                    return 1
                (DEST / name).write_bytes(source.read())
    (DEST / "VERSION").write_text(f"uplot {args.version} (npm registry, `npm pack`)\n")
    sys.stdout.write(f"uPlot {args.version} -> {DEST.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
