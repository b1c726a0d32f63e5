"""Check (issue 10): a big SQLite import completes while other processes write.

Starts `valuemetric import usage` of ``--rows`` rows (default 3,000,000) and, while it runs,
a second import that writes the same database (accounts again, then a small usage file).
Every process must exit 0: the later writers wait for the write lock, saying so on stderr,
instead of failing with "database is locked" after the busy timeout.

    python benchmarks/concurrent_import.py [--rows 3000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_import import generate


def _start(url: str, kind: str, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "import", kind, str(path),
                             "--database-url", url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vm-concurrent-") as tmp:
        directory = Path(tmp)
        files = generate(directory, args.rows)
        small = directory / "small.csv"
        small.write_text("account_id,date,metric,value\nacct-000000,2024-01-01,extra,1\n")
        url = f"sqlite:///{directory / 'shared.db'}"
        if _start(url, "accounts", files["accounts"]).wait() != 0:
            print("could not import the accounts", file=sys.stderr)
            return 1
        started = time.perf_counter()
        big = _start(url, "usage", files["usage"])
        time.sleep(3)  # let the big import take the write lock first
        others = [_start(url, "accounts", files["accounts"]), _start(url, "usage", small)]
        failed = 0
        for label, process in [("big usage import", big), ("accounts import", others[0]),
                               ("small usage import", others[1])]:
            out, err = process.communicate()
            waited = "waited for the lock" if "waiting for another writer" in err else ""
            print(f"{label}: exit {process.returncode} after "
                  f"{time.perf_counter() - started:.0f} s {waited}".rstrip())
            print("  " + (out.strip().splitlines() or [""])[-1])
            if process.returncode != 0:
                failed += 1
                print(err, file=sys.stderr)
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
