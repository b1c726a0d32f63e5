"""False claims on null data and planted truths recovered, over several seeds.

Runs the generators of tests/planted.py through ``valuemetric import`` and
``valuemetric ask ... --format json`` (SQLite files) and prints, per dataset, every claim
made: aligned metrics, the primary metric, gates, thresholds and the segment insight. On
null datasets each claim is a false claim; on planted ones the script checks each truth.

    python -m benchmarks.bench_method --seeds 1 2 3 --n 1200
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from bot.cli import main
from tests import planted


def _ask(url: str, config: Path, text: str) -> Any:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["ask", text, "--format", "json", "--config", str(config),
                     "--database-url", url]) == 0
    return json.loads(out.getvalue())


def claims(url: str, config: Path) -> dict[str, Any]:
    corr = _ask(url, config, "correlate")
    rec = _ask(url, config, "recommend")
    segments = _ask(url, config, "segments")
    thresholds = {}
    for m in (row["metric"] for row in corr["metrics"]):
        t = _ask(url, config, f"thresholds {m}")
        thresholds[m] = [kind for kind in ("activation", "expansion", "price_increase")
                         if t[kind] is not None]
    return {
        "aligned": [m["metric"] for m in corr["metrics"] if m["aligned"]],
        "primary": rec["primary_metric"], "gate": rec["gate"], "tied": rec["tied"],
        "warnings": rec["warnings"],
        "thresholds": {m: kinds for m, kinds in thresholds.items() if kinds},
        "segment_insight": [s["metric"] for s in segments["separating"]],
        "detected": corr["pricing"]["detected"],
    }


def _load(url: str, files: planted.PlantedFiles) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for kind in ("accounts", "usage", "revenue"):
            assert main(["import", kind, str(getattr(files, kind)), "--database-url", url]) == 0


def false_claims(c: dict[str, Any]) -> int:
    return (len(c["aligned"]) + (c["primary"] is not None) + len(c["gate"])
            + sum(len(k) for k in c["thresholds"].values()) + len(c["segment_insight"]))


def planted_misses(c: dict[str, Any]) -> list[str]:
    misses = []
    if c["primary"] != "seats":
        misses.append(f"primary {c['primary']}")
    if c["gate"] != ["integrations"]:
        misses.append(f"gate {c['gate']}")
    if "activation" not in c["thresholds"].get("seats", []):
        misses.append("no seats activation")
    if "expansion" not in c["thresholds"].get("integrations", []):
        misses.append("no integrations expansion threshold")
    if "competitor_adds" not in c["warnings"]:
        misses.append("competitor_adds not a warning")
    for harmful_or_age in ("competitor_adds", "records"):
        if (harmful_or_age in c["aligned"] or harmful_or_age in c["gate"]
                or harmful_or_age == c["primary"] or harmful_or_age in c["thresholds"]
                or harmful_or_age in c["segment_insight"]):
            misses.append(f"claim on {harmful_or_age}")
    return misses


def run(seeds: list[int], n: int, catalog: bool) -> None:
    total_false = 0
    nulls = 0
    for seed in seeds:
        for kind in ("null, priced by plan", "planted, priced by plan", "null, weekly"):
            with tempfile.TemporaryDirectory() as tmp:
                if kind == "null, weekly":
                    files = planted.generate(Path(tmp), n=n, seed=seed, null=True)
                else:
                    files = planted.generate_priced_by_plan(
                        Path(tmp), n=n, seed=seed, planted=kind.startswith("planted"),
                        catalog=catalog)
                url = f"sqlite:///{tmp}/vm.db"
                _load(url, files)
                c = claims(url, files.config)
            if kind.startswith("planted"):
                print(f"{kind}, seed {seed}: misses {planted_misses(c) or 'none'}; {c}")
            else:
                nulls += 1
                total_false += false_claims(c)
                print(f"{kind}, seed {seed}: {false_claims(c)} false claims; {c}")
    print(f"false claims over {nulls} null datasets: {total_false}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--n", type=int, default=1200)
    parser.add_argument("--no-catalog", action="store_true")
    args = parser.parse_args()
    run(args.seeds, args.n, not args.no_catalog)
