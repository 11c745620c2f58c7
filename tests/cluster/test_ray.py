"""Evaluation and batch upscaling on a real local Ray cluster (``ray start --head``, 2 CPUs, loopback only).

No mock: the tests start a head node, run the real workers (realesr-animevideov3 on small
images), kill a worker and a driver, and compare with the single-machine path to the last digit
and the last byte.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import core
from cli.main import main

MODEL = "realesr-animevideov3"
ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))


_RAY_LOG_LINE = re.compile(r"\[\d{4}-\d\d-\d\d [\d:,]+ [DIWEF] \d+ \d+\] \w+\.cc:\d+:")


def _shown(stderr: str) -> list[str]:
    """The lines of ``stderr`` that say something: not the blank ones a progress bar leaves where it clears
    itself, nor Ray's C++ log lines (each pool's "constructor arguments in the object store",
    ray-project/ray#57733), whose numbers vary from run to run."""
    return [line for line in stderr.splitlines() if line.strip() and not _RAY_LOG_LINE.search(line)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _token_auth() -> Iterator[None]:
    """Every head, driver and CLI subprocess of this module runs with token authentication and shares one
    token, whichever test runs first or alone (a ``~/.ray/auth_token`` that an earlier Ray left behind
    made a head that a lone test started refuse its driver); the environment is restored after."""
    saved = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # a fresh machine has none in ~/.ray
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def ray_address(weights_dir: Path) -> Iterator[str]:
    """A 2-CPU Ray head node on 127.0.0.1 for this module; its workers see the session's weights folder."""
    head, address, temp = _start_head()
    try:
        yield address
    finally:
        _stop_group(head)
        shutil.rmtree(temp, ignore_errors=True)


def _start_head(extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, str]:
    """A 2-CPU head on 127.0.0.1, its address and its temporary folder. ``--block``: the head's processes
    (GCS, raylet, workers) stay in the process group of this one, which is all :func:`_stop_group` stops;
    never `ray stop`, which stops every cluster on the machine."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"} | (extra_env or {})
    log = Path(temp) / "head.log"
    with open(log, "wb") as out:
        head = subprocess.Popen([RAY, "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
                                 "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                                 "--disable-usage-stats", "--temp-dir", temp],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while b"Ray runtime started" not in log.read_bytes():
        if head.poll() is not None or time.monotonic() > deadline:
            _stop_group(head)
            raise RuntimeError("the Ray head did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.25)
    return head, f"127.0.0.1:{port}", temp


def _stop_group(head: subprocess.Popen) -> None:
    """Stop the process group ``head`` leads (this module's cluster, nothing else): SIGTERM, then SIGKILL."""
    group = head.pid  # start_new_session: the head leads its own group
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            head.poll()  # reap the head, so that its group can empty
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    head.wait(timeout=10)


def _group_alive(head: subprocess.Popen) -> bool:
    try:
        os.killpg(head.pid, 0)
    except ProcessLookupError:
        return False
    return head.poll() is None


def test_the_suite_stops_only_the_cluster_it_started(ray_address: str) -> None:
    """Another cluster on the machine (here a second head) outlives the stop of ours."""
    bystander, address, temp = _start_head()
    try:
        ours, _, our_temp = _start_head()
        _stop_group(ours)
        shutil.rmtree(our_temp, ignore_errors=True)
        assert not _group_alive(ours)
        assert _group_alive(bystander)
        with socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])), timeout=5):
            pass  # its GCS still answers
        with socket.create_connection(("127.0.0.1", int(ray_address.rsplit(":", 1)[1])), timeout=5):
            pass  # and so does this module's cluster
    finally:
        _stop_group(bystander)
        shutil.rmtree(temp, ignore_errors=True)
    assert not _group_alive(bystander)


def _folder(path: Path, count: int, side: int, broken: bool = False) -> Path:
    """``count`` real photo crops (HR ``side`` px), cycling through the samples at shifted offsets."""
    path.mkdir()
    names = core.list_samples()
    for i in range(count):
        image = core.load_sample(names[i % len(names)])
        offset = 7 * (i // len(names))
        core.write_png(path / f"{i:03d}.png", image[offset: offset + side, offset: offset + side])
    if broken:
        (path / "999.png").write_bytes(b"not a png")
    return path


def _local(dataset: core.evaluation.Dataset, methods: list[str], metrics: list[str]) -> core.evaluation.EvalResult:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker runs
    try:  # with the engine a cluster runs (this machine's measured choice may be another)
        return core.evaluate(dataset, methods, metrics, core.EvalSettings(device="cpu"),
                             upscaler_factory=lambda name: core.Upscaler.load(name, device="cpu", engine="torch"))
    finally:
        torch.set_num_threads(threads)


def test_evaluation_on_ray_equals_the_local_run_and_shares_its_store(ray_address: str, tmp_path: Path) -> None:
    from core import cluster

    dataset = core.open_dataset(_folder(tmp_path / "hr", 6, 96, broken=True), 4)
    made = tmp_path / "made"  # outputs made elsewhere: the workers read them where the driver named them
    made.mkdir()
    for path in sorted((tmp_path / "hr").glob("0*.png")):
        core.write_png(made / f"{path.stem}_out.png", core.read_image(path)[:, ::-1])
    methods, metrics = ["bicubic", MODEL, "hr", f"made={made}"], ["psnr", "ssim", "niqe"]
    local = _local(dataset, methods, metrics)
    db = core.ResultDB(tmp_path / "results.sqlite")
    seen: list[int | None] = []
    remote = cluster.evaluate_on_ray(dataset, methods, metrics, core.EvalSettings(device="cpu"),
                                     cluster=cluster.ClusterSettings(ray_address, workers=2), db=db,
                                     hooks=core.EvalHooks(on_row=lambda row, pid: seen.append(pid)))
    assert [(r.image, r.method) for r in remote.rows] == [(r.image, r.method) for r in local.rows]
    for mine, theirs in zip(local.rows, remote.rows):
        assert mine.metrics == theirs.metrics, (mine, theirs)  # to the last digit
        assert (mine.device, mine.precision, mine.source) == (theirs.device, theirs.precision, theirs.source)
        assert mine.weights == theirs.weights and (mine.weights.startswith(f"{MODEL}@ncnn-sha256:")
                                                   or mine.method != MODEL or bool(mine.error))
        assert bool(mine.error) == bool(theirs.error)
    assert sum(1 for r in remote.rows if r.error) == len(methods)  # the broken file: one error row per method
    assert len(seen) == len(remote.rows) and all(pid and pid != os.getpid() for pid in seen), "computed elsewhere"
    assert remote.plan == {"engine": "torch", "tile": 384, "device": "cpu", "workers": "2 CPU workers x 1 thread"}
    # the driver wrote every finished row; a second run finds them without reading an image or starting workers
    again = cluster.evaluate_on_ray(dataset, methods, metrics, core.EvalSettings(device="cpu"),
                                    cluster=cluster.ClusterSettings(ray_address, workers=2), db=db)
    assert again.reused == remote.computed == 24 and again.computed == 0
    assert {r.source for r in remote.rows if r.method == "made" and not r.error} == {f"outputs in {made}"}
    assert [r.metrics for r in again.rows if not r.error] == [r.metrics for r in remote.rows if not r.error]
    db.close()


def test_batch_upscale_on_ray_writes_the_bytes_the_local_cli_writes(ray_address: str, tmp_path: Path,
                                                                    weights_dir: Path) -> None:
    inputs = _folder(tmp_path / "in", 5, 40)
    core.write_png(inputs / "deep.png", (core.load_sample("coffee")[:30, :20].astype(np.uint16) * 257))  # 16-bit
    common = ["--weights-dir", str(weights_dir), "upscale", "--model", MODEL, "--outscale", "3", "--device", "cpu",
              "--engine", "torch", "-q"]
    assert main([*common, str(inputs), "-o", str(tmp_path / "local")]) == 0
    # the same folder named as a URI: workers read it through pyarrow's file systems
    assert main([*common, f"file://{inputs}", "-o", str(tmp_path / "ray"), "--ray", ray_address]) == 0
    local = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert local == sorted(p.name for p in (tmp_path / "ray").iterdir()) and len(local) == 6
    for name in local:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name
    assert core.read_image(tmp_path / "ray" / "deep.png").dtype == np.uint16


def test_a_killed_worker_loses_and_duplicates_no_row(ray_address: str, tmp_path: Path) -> None:
    from core import cluster

    dataset = core.open_dataset(_folder(tmp_path / "hr", 16, 256), 4)
    killed: list[int] = []

    def on_row(row: core.evaluation.EvalRow, pid: int | None) -> None:
        if not killed and pid:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)  # the actor dies with tasks queued on it

    arrived: list[core.evaluation.EvalRow] = []
    result = cluster.evaluate_on_ray(dataset, [MODEL], ["psnr"], core.EvalSettings(device="cpu"),
                                     cluster=cluster.ClusterSettings(ray_address, workers=2),
                                     hooks=core.EvalHooks(on_row=lambda row, pid: (arrived.append(row),
                                                                                   on_row(row, pid))))
    assert killed, "no worker was killed"
    assert sorted(r.image for r in arrived) == sorted(i.name for i in dataset.items), "a row lost or duplicated"
    assert not any(r.error for r in result.rows)
    local = _local(dataset, [MODEL], ["psnr"])
    assert [r.metrics for r in result.rows] == [r.metrics for r in local.rows]


def _stored_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_killed_driver_loses_nothing_and_the_rerun_computes_only_the_rest(ray_address: str, tmp_path: Path,
                                                                              weights_dir: Path) -> None:
    folder = _folder(tmp_path / "hr", 24, 384)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cli", "--weights-dir", str(weights_dir), "evaluate", "--dataset", str(folder),
               "--methods", MODEL, "--metrics", "psnr", "--device", "cpu", "--out", str(out), "-q",
               "--ray", ray_address, "--workers", "2"]
    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _stored_rows(out / "results.sqlite") < 3 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait(30)
    before = _stored_rows(out / "results.sqlite")
    assert 3 <= before < 24, f"the driver was killed after {before} of 24 rows"
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    counts = re.search(r"(\d+) computed, (\d+) reused", rerun.stderr)
    assert counts, rerun.stderr[-2000:]
    assert (int(counts[1]), int(counts[2])) == (24 - before, before)
    assert _stored_rows(out / "results.sqlite") == 24


def test_the_single_machine_path_does_not_import_ray(tmp_path: Path) -> None:
    code = ("import sys; from cli.main import main; "
            f"code = main(['evaluate', '--dataset', 'samples', '--methods', 'bicubic', '--metrics', 'psnr', "
            f"'--out', {str(tmp_path)!r}, '-q']); "
            "import dashboard.jobs, dashboard.loading, pages.benchmark; "
            "assert 'ray' not in sys.modules, 'ray was imported'; sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_without_ray_installed_the_cli_says_how_to_enable_it(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['ray'] = None; from cli.main import main; "  # as if Ray were not installed
            f"sys.exit(main(['evaluate', '--methods', 'bicubic', '--out', {str(tmp_path)!r}, '--ray']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "requirements-cluster.txt" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_the_benchmark_page_runs_on_the_cluster(ray_address: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.dashboard.apptest import open_page, wait

    monkeypatch.setenv("STUDIO_RESULTS_DIR", str(tmp_path / "results"))
    at = open_page("benchmark")
    at.multiselect(key="bench_methods").set_value(["bicubic", MODEL]).run()
    at.multiselect(key="bench_metrics").set_value(["psnr", "ssim"]).run()
    at.toggle(key="bench_ray").set_value(True).run()
    at.text_input(key="bench_ray_address").set_value(ray_address).run()
    at.button(key="bench_run_button").click().run()
    wait(at, lambda a: any("Per-method means" in s.value for s in a.subheader), timeout=180)
    assert not at.error, [e.value for e in at.error]
    rows = at.dataframe[1].value
    local = _local(core.open_dataset("samples", 4), ["bicubic", MODEL], ["psnr", "ssim"])
    assert len(rows) == 12 and sorted(rows["PSNR ↑"]) == sorted(r.metrics["psnr"] for r in local.rows)


def _cli(args: list[str], cwd: Path, env: dict | None = None,
         timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    return proc, time.monotonic() - start


@pytest.mark.parametrize("address, message", [
    (f"127.0.0.1:{_free_port()}", "No Ray head answers at 127.0.0.1:"),  # nothing listens there
    ("no-such-head.invalid:6379", "Cannot find the Ray head 'no-such-head.invalid'"),
    ("10.0.0.5", "is not a Ray address"),
], ids=["nothing-listens", "unknown-host", "no-port"])  # ids without the free port: the same in every process
def test_a_wrong_address_fails_in_seconds_with_what_to_do(tmp_path: Path, address: str, message: str) -> None:
    proc, seconds = _cli(["evaluate", "--dataset", "samples", "--methods", "bicubic", "--metrics", "psnr", "--out",
                          str(tmp_path), "-q", "--ray", address], ROOT, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert seconds < 30 and "Traceback" not in proc.stderr
    assert not (tmp_path / "results.json").exists()


def test_ray_auto_with_a_wrong_ray_address_fails_in_seconds(tmp_path: Path) -> None:
    """Issue 38.19: ``--ray auto`` with RAY_ADDRESS at a dead head hung past 120 s while Ray retried."""
    port = _free_port()
    env = os.environ | {"RAY_ADDRESS": f"127.0.0.1:{port}"}
    proc, seconds = _cli(["evaluate", "--dataset", "samples", "--methods", "bicubic", "--metrics", "psnr", "--out",
                          str(tmp_path), "-q", "--ray", "auto"], ROOT, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"RAY_ADDRESS=127.0.0.1:{port} (which --ray auto joins): No Ray head answers" in proc.stderr
    assert seconds < 30 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("hide_grpc", [False, True])
def test_a_ray_client_address_is_refused_in_one_line_with_what_to_use(tmp_path: Path, hide_grpc: bool) -> None:
    """Issue 38.19: with grpcio installed (the test environment has it, through TensorFlow), ``ray://`` failed with
    "'Worker' object has no attribute 'core_worker'"; without it, Ray's own import error. Both: one line."""
    hide = ("import runpy, sys; sys.modules['grpc'] = None; " if hide_grpc else "import runpy, sys; ") + \
        "sys.argv[0] = 'cli'; runpy.run_module('cli', run_name='__main__')"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", hide, "upscale", str(ROOT / "samples"), "-o", str(tmp_path), "--ray",
                           "ray://127.0.0.1:10001"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "ray://127.0.0.1:10001 is a Ray Client address, which the studio's cluster runs cannot use" in proc.stderr
    assert "127.0.0.1:6379" in proc.stderr and "--ray auto" in proc.stderr
    assert seconds < 30 and "Traceback" not in proc.stderr and not any(tmp_path.iterdir())


def test_a_bare_ray_flag_starts_a_private_ray_whatever_ray_address_says(tmp_path: Path) -> None:
    """``--ray`` alone must not join (or hang on) a cluster named elsewhere: RAY_ADDRESS points at a dead head."""
    env = os.environ | {"RAY_ADDRESS": f"127.0.0.1:{_free_port()}"}
    proc, seconds = _cli(["evaluate", "--dataset", "samples", "--methods", "bicubic", "--metrics", "psnr", "--out",
                          str(tmp_path / "out"), "-q", "--ray", "--workers", "1"], ROOT, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads((tmp_path / "out" / "results.json").read_text())["rows"]) == len(core.list_samples())


def test_relative_paths_given_to_a_driver_in_another_folder_are_read_by_the_workers(ray_address: str,
                                                                                    tmp_path: Path) -> None:
    """The workers of a separate cluster run in another folder: a relative --dataset, input and output must be
    resolved where the driver runs."""
    _folder(tmp_path / "hr", 3, 64)
    proc, _ = _cli(["evaluate", "--dataset", "hr", "--methods", "bicubic", "--metrics", "psnr", "--out", "run", "-q",
                    "--ray", ray_address, "--workers", "1"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert len(rows) == 3 and not any(r["error"] for r in rows), rows
    proc, _ = _cli(["upscale", "hr", "-o", "up", "--model", MODEL, "--ray", ray_address, "--workers", "1"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "up").iterdir()) == ["000.png", "001.png", "002.png"]
    assert core.read_image(tmp_path / "up" / "000.png").shape == (256, 256, 3)
    # a folder every node shares (as NFS would): the workers write there themselves, under its absolute path
    proc, _ = _cli(["upscale", "hr", "-o", "shared", "--shared-output", "--model", MODEL, "--ray", ray_address,
                    "--workers", "1"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"-> {tmp_path / 'shared' / '001.png'} (" in proc.stdout, proc.stdout  # the path the worker wrote
    for name in ("000.png", "001.png", "002.png"):
        assert (tmp_path / "shared" / name).read_bytes() == (tmp_path / "up" / name).read_bytes()


class _Poisoned:
    """A worker that dies (as if killed for memory) on the item named ``poison``, on every attempt."""

    def __init__(self, poison: str) -> None:
        self.poison = set(poison.split(","))

    def __call__(self, batch: dict) -> dict:
        if self.poison & set(batch["name"]):
            os._exit(1)
        return {"name": list(batch["name"])}


@pytest.mark.parametrize("poison", ["03", "01,04"])
def test_an_item_that_kills_its_worker_every_time_is_tried_a_bounded_number_of_times(ray_address: str,
                                                                                      poison: str) -> None:
    """Ray's default retries a dead worker's task forever: an image that gets its worker killed would loop; and
    two such images (issue 38.19) used to leave the pool without a worker, and the run hung."""
    import threading

    import ray.cloudpickle

    from core._ray import Pool, connected, run_pool

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import the tests
    items = [{"name": f"{i:02d}"} for i in range(6)]
    names: list[str] = []

    def run() -> None:
        with connected(ray_address):
            names.extend(row["name"] for row in run_pool(items, _Poisoned, {"poison": poison}, Pool(2)))

    thread = threading.Thread(target=run, daemon=True)  # unbounded retries would never end: fail, do not hang
    thread.start()
    thread.join(timeout=240)
    assert not thread.is_alive(), "the poisoned item is still being retried"
    # the rest finished, each once; the poisoned ones were dropped, not retried forever
    assert sorted(names) == [item["name"] for item in items if item["name"] not in poison.split(",")]


def test_what_never_comes_back_from_the_workers_is_an_error_row(ray_address: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver turns items whose task failed every attempt into error rows and outcomes, never a silent gap."""
    from core import cluster

    real_run = cluster.run_pool

    def dropping(items, worker, arguments, pool, status=None):  # as run_pool does after the last attempt
        yield from real_run(items[1:], worker, arguments, pool, status)

    monkeypatch.setattr(cluster, "run_pool", dropping)
    dataset = core.open_dataset(_folder(tmp_path / "hr", 3, 48), 4)
    result = cluster.evaluate_on_ray(dataset, ["bicubic"], ["psnr"], core.EvalSettings(device="cpu"),
                                     cluster=cluster.ClusterSettings(ray_address, workers=1))
    assert [r.image for r in result.rows] == ["000", "001", "002"]
    assert "died 3 times" in result.rows[0].error and not result.rows[1].error and not result.rows[2].error
    outcomes = list(cluster.upscale_on_ray([tmp_path / "hr" / "000.png", tmp_path / "hr" / "001.png"],
                                           cluster.ModelRun(MODEL, device="cpu"),
                                           cluster=cluster.ClusterSettings(ray_address, workers=1)))
    assert sorted(o.index for o in outcomes) == [0, 1]
    lost = next(o for o in outcomes if o.index == 0)
    assert lost.png is None and "000.png: its worker died 3 times" in lost.error


def test_a_model_that_cannot_load_on_the_workers_is_one_clear_line(ray_address: str, tmp_path: Path) -> None:
    """CUDA asked of CPU workers (GPUs that Ray was not told of): the workers' own error, not Ray's traceback."""
    _folder(tmp_path / "in", 2, 32)
    proc, seconds = _cli(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", MODEL, "--device",
                          "cuda", "--gpus-per-worker", "0", "--ray", ray_address, "--workers", "1"], ROOT, timeout=240)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "On a Ray worker: CUDA was requested but no CUDA GPU is visible" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and len(_shown(proc.stderr)) < 12, proc.stderr[-3000:]


class _Slow:
    """A worker that takes a quarter of a second per item and says which process it ran in."""

    def __call__(self, batch: dict) -> dict:
        time.sleep(0.25 * len(batch["name"]))
        return {"name": list(batch["name"]), "pid": [os.getpid()] * len(batch["name"])}


def _pending_gpu_demand(address: str) -> float:
    """The GPUs that actors waiting to start ask for, as the cluster's scheduler (its GCS) records them."""
    from ray.autoscaler.v2.sdk import get_cluster_status

    demands = get_cluster_status(address).resource_demands.ray_task_actor_demand
    return sum(bundle.bundle.get("GPU", 0) * bundle.count for demand in demands for bundle in demand.bundles_by_count)


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_gpu_workers_ask_the_scheduler_for_gpus_and_the_pool_grows_as_gpu_nodes_join() -> None:
    """The documented cluster: a head with no GPU, GPU nodes that start only when actors ask for GPUs. The run
    must ask (so an autoscaler would start one), say what it waits for, and use each GPU node as it joins."""
    import threading

    import ray.cloudpickle
    from ray.cluster_utils import Cluster

    from core._ray import Pool, connected, run_pool

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    grid = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False})
    lines: list[str] = []
    rows: list[int] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with connected(grid.address):
                items = [{"name": f"{i:02d}"} for i in range(48)]
                rows.extend(row["pid"] for row in run_pool(items, _Slow, {}, Pool(None, gpus=1.0), lines.append))
        except BaseException as exc:  # noqa: BLE001 - the test's thread hands it to the test
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        _until(lambda: lines or failed, 60, "a line saying what the run waits for")
        assert not failed and not rows
        assert lines[0].startswith("Waiting for a worker with 1 GPU (0 of 0 GPUs free now)"), lines
        _until(lambda: _pending_gpu_demand(grid.address) >= 1, 30, "the GPU request to reach the scheduler")
        grid.add_node(num_cpus=1, num_gpus=1)
        _until(lambda: rows or failed, 90, "the first GPU worker's rows")
        first = len(rows)
        grid.add_node(num_cpus=1, num_gpus=1)
        thread.join(timeout=240)
        assert not thread.is_alive() and not failed, failed
        assert len(rows) == 48 and first < 40
        assert len(set(rows)) == 2, "the pool grew to the second GPU node"
        assert len(lines) == 1, "no waiting line once rows arrive"
    finally:
        grid.shutdown()


def test_the_device_decides_the_workers_and_the_plan_is_the_same_for_every_node(ray_address: str) -> None:
    """``--device cuda`` asks for GPU workers (the documented cluster has none until they are asked for); the
    engine and tile are the driver's, whatever each node would pick."""
    from core import cluster
    from core._ray import connected

    with connected(ray_address):  # 2 CPUs, no GPU
        gpu = cluster._pool(cluster.ClusterSettings(ray_address), "cuda")
        assert (gpu.gpus, gpu.workers) == (1.0, None)  # asked for, waited for: the cluster may start GPU nodes
        assert cluster._pool(cluster.ClusterSettings(ray_address, gpus_per_worker=0.5, workers=4), "auto").gpus == 0.5
        cpu = cluster._pool(cluster.ClusterSettings(ray_address), "auto")
        assert (cpu.gpus, cpu.workers, cpu.threads) == (0.0, 2, 1)  # auto on a cluster without GPUs: CPU workers
        with pytest.raises(core.errors.SettingsError, match="cannot run on --device cpu"):
            cluster._pool(cluster.ClusterSettings(ray_address, gpus_per_worker=1), "cpu")
        with pytest.raises(core.errors.SettingsError, match="no other node can join a private Ray"):
            cluster._pool(cluster.ClusterSettings(None), "cuda")
        plan = cluster.Plan.of(cluster.ClusterSettings(ray_address), gpu, None, "cuda")
        assert (plan.engine, plan.tile, plan.device) == ("torch", 512, "cuda")
        plan = cluster.Plan.of(cluster.ClusterSettings(ray_address, engine="ncnn"), cpu, 200, "auto")
        assert (plan.engine, plan.tile, plan.device) == ("ncnn", 200, "cpu")
        assert "every worker runs engine ncnn, tile 200, device cpu" in plan.line()


@pytest.fixture
def s3_server() -> Iterator[dict[str, str]]:
    """A local S3 server (moto), and the settings that reach it: given to the driver only."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "studio-test",
                "AWS_SECRET_ACCESS_KEY": "studio-test", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the S3 server did not start"
                time.sleep(0.2)
        yield settings
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_s3_inputs_and_outputs_are_read_and_written_by_the_workers_through_the_drivers_endpoint(
        ray_address: str, tmp_path: Path, s3_server: dict[str, str]) -> None:
    """The head and its workers were started without any S3 setting: the driver's endpoint and credentials
    must reach them (the job's runtime environment), or every image fails to read (MinIO, R2, a local server)."""
    import boto3

    inputs = _folder(tmp_path / "in", 3, 40)
    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                          aws_access_key_id="studio-test", aws_secret_access_key="studio-test")
    client.create_bucket(Bucket="photos")
    for path in sorted(inputs.iterdir()):
        client.upload_file(str(path), "photos", f"batch/{path.name}")
    env = os.environ | s3_server
    proc, _ = _cli(["upscale", "s3://photos/batch/", "-o", str(tmp_path / "out"), "--model", MODEL, "--engine",
                    "torch", "--device", "cpu", "--ray", ray_address, "--workers", "1"], ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000.png", "001.png", "002.png"]
    assert main(["upscale", str(inputs), "-o", str(tmp_path / "local"), "--model", MODEL, "--engine", "torch",
                 "--device", "cpu", "-q"]) == 0
    for name in ("000.png", "001.png", "002.png"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    # outputs into the object store: each worker writes its own; the driver gets a row, not the image
    proc, _ = _cli(["upscale", "s3://photos/batch/", "-o", "s3://photos/up/", "--model", MODEL, "--engine", "torch",
                    "--device", "cpu", "--ray", ray_address, "--workers", "1"], ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "s3://photos/batch/001.png -> s3://photos/up/001.png (" in proc.stdout, proc.stdout
    stored = {item["Key"]: item["Size"] for item in client.list_objects_v2(Bucket="photos", Prefix="up/")["Contents"]}
    assert sorted(stored) == ["up/000.png", "up/001.png", "up/002.png"]
    for name in ("000.png", "001.png", "002.png"):
        body = client.get_object(Bucket="photos", Key=f"up/{name}")["Body"].read()
        assert body == (tmp_path / "local" / name).read_bytes(), name
    again, _ = _cli(["upscale", "s3://photos/batch/", "-o", "s3://photos/up", "--model", MODEL, "--skip-existing",
                     "--ray", ray_address, "--workers", "1"], ROOT, env=env, timeout=300)
    assert again.returncode == 0 and again.stdout.count("(exists; skipped)") == 3, again.stdout + again.stderr[-2000:]
    local_run, _ = _cli(["upscale", str(inputs), "-o", "s3://photos/up/"], ROOT, env=env, timeout=120)
    assert local_run.returncode == 2 and "written by cluster workers; add --ray" in local_run.stderr


def test_a_div2k_layout_in_s3_is_paired_by_the_driver_and_read_by_the_workers(
        ray_address: str, tmp_path: Path, s3_server: dict[str, str]) -> None:
    """The driver lists the bucket once and pairs HR with LR by DIV2K's names; each worker reads its own
    images through the driver's endpoint. The rows equal a local run on the same files."""
    import boto3

    hr = _folder(tmp_path / "hr", 3, 64)
    local = tmp_path / "DIV2K"
    for path in sorted(hr.iterdir()):
        image = core.read_image(path)
        core.write_png(local / "DIV2K_valid_HR" / f"08{path.stem[1:]}.png", image)
        core.write_png(local / "DIV2K_valid_LR_bicubic" / "X4" / f"08{path.stem[1:]}x4.png", core.imresize(image, 0.25))
    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                          aws_access_key_id="studio-test", aws_secret_access_key="studio-test")
    client.create_bucket(Bucket="data")
    for path in sorted(local.rglob("*.png")):
        client.upload_file(str(path), "data", f"sets/DIV2K/{path.relative_to(local).as_posix()}")
    env = os.environ | s3_server
    args = ["evaluate", "--methods", f"bicubic,{MODEL}", "--metrics", "psnr,ssim", "--engine", "torch", "--device",
            "cpu"]
    proc, _ = _cli([*args, "--dataset", "s3://data/sets/DIV2K", "--out", str(tmp_path / "ray"), "--ray", ray_address,
                    "--workers", "2"], ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DIV2K valid: 3 images, x4, LR from DIV2K bicubic X4 (folder)" in proc.stderr, proc.stderr[-2000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker runs
    try:
        assert main([*args, "--dataset", str(local), "--out", str(tmp_path / "here"), "-q"]) == 0
    finally:
        torch.set_num_threads(threads)
    on_ray = json.loads((tmp_path / "ray" / "results.json").read_text())
    here = json.loads((tmp_path / "here" / "results.json").read_text())
    key = [(r["image"], r["method"]) for r in here["rows"]]
    assert key == [(r["image"], r["method"]) for r in on_ray["rows"]] and len(key) == 6
    assert [r["metrics"] for r in on_ray["rows"]] == [r["metrics"] for r in here["rows"]]
    assert not any(r["error"] for r in on_ray["rows"])


def _epoch(path: Path, seed: int) -> str:
    """A Compact x4 checkpoint (every seed the same size) at ``path``; its SHA-256."""
    import hashlib

    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    save_file(Compact(num_feat=8, num_conv=2, upscale=4).state_dict(), str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_workers_run_the_drivers_weights_or_refuse_to_score(tmp_path: Path, monkeypatch) -> None:
    """Issue 38.4: the workers' nodes hold another file of the same name (their STUDIO_WEIGHTS_DIR): the driver's
    setting reaches them, and where its folder is not there (another machine), the other file is refused, not
    scored under the driver's name. A path in /proc/self/fd is a folder for the driver only: a node without it."""
    from core import cluster

    mine, theirs = tmp_path / "driver-weights", tmp_path / "node-weights"
    digest = _epoch(mine / "my_model.safetensors", seed=1)
    other = _epoch(theirs / "my_model.safetensors", seed=2)
    assert other != digest
    head, address, temp = _start_head({"STUDIO_WEIGHTS_DIR": str(theirs)})
    try:
        dataset = core.open_dataset(_folder(tmp_path / "hr", 2, 64), 4)
        settings, ray_settings = core.EvalSettings(device="cpu"), cluster.ClusterSettings(address, workers=1)
        monkeypatch.setenv("STUDIO_WEIGHTS_DIR", str(mine))  # the driver's setting only
        result = cluster.evaluate_on_ray(dataset, ["my_model"], ["psnr"], settings, cluster=ray_settings)
        local = core.evaluate(dataset, ["my_model"], ["psnr"], settings)
        assert [r.error for r in result.rows] == ["", ""]
        assert {r.weights for r in result.rows} == {f"my_model@sha256:{digest}"}
        assert [r.metrics for r in result.rows] == [r.metrics for r in local.rows]

        monkeypatch.delenv("STUDIO_WEIGHTS_DIR")
        descriptor = os.open(mine, os.O_RDONLY)
        os.dup2(descriptor, 900)
        try:
            elsewhere = cluster.evaluate_on_ray(dataset, ["my_model"], ["psnr"], settings, cluster=ray_settings,
                                                weights_dir=Path("/proc/self/fd/900"))
        finally:
            os.close(900)
            os.close(descriptor)
        assert all(not r.metrics for r in elsewhere.rows)
        for row in elsewhere.rows:
            assert "other weights than the driver" in row.error and f"sha256 {other[:12]}" in row.error, row.error
            assert f"sha256 {digest[:12]}" in row.error and "STUDIO_WEIGHTS_DIR" in row.error
    finally:
        _stop_group(head)
        shutil.rmtree(temp, ignore_errors=True)


_BROKEN_CUDA = '''\
"""Loaded by every Python process of one test's Ray head (sitecustomize): a GPU whose kernels fail, as a node
with a driver its torch build cannot use does, at the first network call."""
import torch

def _fail(self, *args, **kwargs):
    raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

torch.nn.Module.__call__ = _fail
'''


def test_a_node_whose_cuda_fails_gives_clear_rows_and_bicubic_still_scores(weights_dir: Path, tmp_path: Path) -> None:
    """Issue 38.19: a GPU node whose CUDA did not work gave "its worker died 3 times (killed, or out of memory?)"
    for every row, bicubic included, after all the retries. Its model rows now say what failed and where, and
    bicubic is scored; a batch upscale ends with the same one line."""
    from core import cluster

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_BROKEN_CUDA)
    head, address, temp = _start_head({"PYTHONPATH": str(tmp_path / "site")})
    try:
        _folder(tmp_path / "hr", 2, 32)
        start = time.monotonic()
        result = cluster.evaluate_on_ray(core.open_dataset(tmp_path / "hr", 4), ["bicubic", MODEL], ["psnr"],
                                         core.EvalSettings(device="cpu"),
                                         cluster=cluster.ClusterSettings(address, workers=1))
        seconds = time.monotonic() - start
        rows = {(r.image, r.method): r for r in result.rows}
        assert len(rows) == 4 and all(not rows[(i, "bicubic")].error and rows[(i, "bicubic")].metrics["psnr"] > 20
                                      for i in ("000", "001"))
        for image in ("000", "001"):
            error = rows[(image, MODEL)].error
            assert error.startswith("CUDA does not work on the worker") and "no kernel image" in error, error
            assert "died" not in error and "nvidia-smi" in error
        assert seconds < 120, seconds  # no retries of a task that fails the same way each time

        proc, _ = _cli(["upscale", str(tmp_path / "hr"), "-o", str(tmp_path / "out"), "--model", MODEL, "--device",
                        "cpu", "--ray", address, "--workers", "1"], ROOT, timeout=240)
        assert proc.returncode != 0 and "CUDA does not work on the worker" in proc.stderr, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and len(_shown(proc.stderr)) < 12, proc.stderr[-3000:]
    finally:
        _stop_group(head)
        shutil.rmtree(temp, ignore_errors=True)
