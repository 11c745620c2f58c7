"""Probe what a careless user or a second writer does to our files (issue 25, points 1, 4 and 5); print JSON.

    .venv/bin/python benchmarks/trust_probe.py [--root CHECKOUT] [--writes 120]

1. ``upscale DIR -o DIR`` three times (the third with ``--skip-existing``): are the originals intact,
   what sizes do the files in the folder have, what did each run exit with?
2. A flat image's metrics (PSNR +inf, NIQE NaN) computed, then reused from ``results.sqlite``: equal?
3. Two processes write one file ``--writes`` times each with ``core.write_file`` while this one reads
   it: how many reads saw a torn file, how many writes failed?
4. Issue 38's hostile cases (:mod:`benchmarks.trust_round3`): how many held, which did not.

``--root`` runs the probe against another checkout (e.g. a ``git worktree`` of an older commit), so
both sides are measured by the same script.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import os, time
    from core import write_file
    payload = sys.argv[3].encode() * 200_000
    open(sys.argv[2] + ".ready-" + sys.argv[3], "w").close()
    while not os.path.exists(sys.argv[2] + ".go"):  # both writers start together, imports done
        time.sleep(0.01)
    failures = 0
    for _ in range(int(sys.argv[4])):
        try:
            write_file(sys.argv[2], payload)
        except OSError:
            failures += 1
    print(failures)
""")


def _sizes(folder: Path, core) -> dict[str, str]:
    return {p.name: "x".join(map(str, core.read_image(p).shape[:2])) for p in sorted(folder.glob("*.png"))}


def same_folder(root: Path, core) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="trust-"))
    originals = {"a.png": core.load_sample("rocket")[:16, :20], "b.png": core.load_sample("chelsea")[:12, :12]}
    for name, image in originals.items():
        core.write_png(folder / name, image)
    runs = []
    for extra in ([], [], ["--skip-existing"]):
        proc = subprocess.run([sys.executable, "-m", "cli", "upscale", str(folder), "-o", str(folder),
                               "--model", "realesr-animevideov3", "-q", *extra], cwd=root, capture_output=True,
                              text=True, env=os.environ | {"PYTHONPATH": str(root)}, timeout=600)
        runs.append({"args": " ".join(["upscale DIR -o DIR", *extra]), "exit": proc.returncode,
                     "files": _sizes(folder, core), "last_line": (proc.stdout or proc.stderr).strip()[-160:]})
    intact = all((folder / n).exists() and core.read_image(folder / n).shape == image.shape
                 and (core.read_image(folder / n) == image).all() for n, image in originals.items())
    return {"originals_intact": bool(intact), "runs": runs}


def nan_round_trip(core) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="trust-"))
    core.write_png(folder / "hr" / "flat.png", __import__("numpy").full((128, 128, 3), 90, "uint8"))
    dataset = core.open_dataset(folder / "hr", 4)
    db = core.ResultDB(folder / "r.sqlite")
    fresh = core.evaluate(dataset, ["bicubic"], ["psnr", "niqe"], db=db).rows[0].metrics
    resumed = core.evaluate(dataset, ["bicubic"], ["psnr", "niqe"], db=db).rows[0].metrics
    db.close()

    def same(a: float, b: float) -> bool:
        return (math.isnan(a) and math.isnan(b)) or a == b

    return {"fresh": {k: repr(v) for k, v in fresh.items()}, "reused": {k: repr(v) for k, v in resumed.items()},
            "equal": all(same(fresh[k], resumed[k]) for k in fresh)}


def two_writers(root: Path, writes: int) -> dict:
    target = Path(tempfile.mkdtemp(prefix="trust-")) / "results.json"
    target.write_bytes(b"A" * 200_000)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(target), letter, str(writes)],
                                stdout=subprocess.PIPE, text=True) for letter in "AB"]
    while not all(Path(f"{target}.ready-{letter}").exists() for letter in "AB"):
        assert all(w.poll() is None for w in writers), "a writer died"
    Path(f"{target}.go").touch()
    reads = torn = 0
    while any(w.poll() is None for w in writers):
        data = target.read_bytes()
        reads += 1
        torn += not (len(data) == 200_000 and data.count(data[:1]) == len(data))
    failed = [int(w.communicate()[0]) for w in writers]
    return {"reads": reads, "torn_reads": torn, "writes": 2 * writes, "failed_writes": sum(failed),
            "left_behind": sorted(p.name for p in target.parent.iterdir() if p != target and ".ready-" not in p.name
                                  and not p.name.endswith(".go"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--writes", type=int, default=120)
    args = parser.parse_args()
    root = args.root.resolve()
    sys.path.insert(0, str(root))
    import core

    report = {"root": str(root), "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                                          capture_output=True, text=True).stdout.strip(),
              "point_1_upscale_into_its_own_folder": same_folder(root, core),
              "point_4_nan_through_the_store": nan_round_trip(core),
              "point_5_two_writers": two_writers(root, args.writes)}
    # issue 38's hostile cases (benchmarks/trust_round3.py), against the same checkout
    os.environ["TRUST_ROOT"] = str(root)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import trust_round3

    round3 = trust_round3.run_all()
    report["round_3"] = {"cases": round3["cases"], "held": round3["held"],
                         "failed": [r["case"] for r in round3["results"] if not r["held"]]}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
