"""A study on disk: blind images, raters who resume, one transaction per vote, checks, imports, a killed writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import core
from core.errors import SettingsError
from core.study import LEFT, RIGHT, TIE, Study, create_study, make_study, study_results, study_table

METHODS = ("bicubic", "lanczos", "sharp")


def _outputs(images: int = 2) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    outputs, references = {}, {}
    for k in range(images):
        hr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        references[f"img{k}"] = hr
        outputs[f"img{k}"] = {m: np.clip(hr.astype(int) + j * 9, 0, 255).astype(np.uint8)
                              for j, m in enumerate(METHODS)}
    return outputs, references


def _answer(study: Study, rater: str, truth: dict[str, float], rng: np.random.Generator) -> int:
    """Answer every trial of ``rater`` as a careful rater would; returns the trials answered."""
    ids = study.outputs()
    answered = 0
    while (trial := study.next_trial(rater)) is not None:
        (_, a, role_a), (_, b, role_b) = ids[trial.left], ids[trial.right]
        if "copy" in (role_a, role_b):
            choice = TIE
        elif role_a in ("hr", "degraded"):
            choice = LEFT if role_a == "hr" else RIGHT
        else:
            choice = LEFT if rng.random() < 1 / (1 + np.exp(-(truth[a] - truth[b]))) else RIGHT
        assert study.vote(rater, trial.id, choice)
        answered += 1
    return answered


def test_the_images_are_blind_and_a_rater_reads_only_their_own_trials(tmp_path: Path) -> None:
    outputs, references = _outputs()
    study = create_study(tmp_path / "study", "blind", outputs, references=references)
    files = sorted(p.name for p in (tmp_path / "study" / "images").iterdir())
    assert len(files) == 2 * (3 + 1 + 2)  # three outputs, a check copy, HR and degraded per image
    assert not any(name in f for f in files for name in (*METHODS, "img", "hr", "copy", "degraded"))
    ann, bob = study.new_rater(), study.new_rater()
    trial = study.next_trial(ann)
    assert trial is not None and trial.left != trial.right and (trial.done, trial.total) == (0, 7)  # six pairs, a check
    assert study.rater_sees(ann, trial.left) and not study.rater_sees(bob, trial.left)
    assert study.next_trial(ann).id == trial.id  # a reload shows the open trial again, not a new one
    with pytest.raises(SettingsError, match="not yours"):
        study.vote(bob, trial.id, LEFT)
    with pytest.raises(SettingsError, match="one of left, right, tie"):
        study.vote(ann, trial.id, "both")
    assert study.vote(ann, trial.id, LEFT) and not study.vote(ann, trial.id, RIGHT)  # a resent answer: once
    assert len(study.votes()) == 1 and study.votes()[0].choice == LEFT
    with pytest.raises(SettingsError, match="new folder"):
        create_study(tmp_path / "study", "again", outputs)


def test_careless_raters_are_found_by_the_checks_and_left_out(tmp_path: Path) -> None:
    outputs, references = _outputs()
    study = create_study(tmp_path / "study", "checks", outputs, references=references, trials_per_rater=16,
                         check_every=4)
    truth = {"bicubic": -1.0, "lanczos": 0.0, "sharp": 1.0}
    careful = study.new_rater()
    assert _answer(study, careful, truth, np.random.default_rng(1)) == 16
    sloppy = study.new_rater()
    while (trial := study.next_trial(sloppy)) is not None:
        study.vote(sloppy, trial.id, LEFT)  # always left, checks included
    checks = study.checks()
    assert checks[careful] == (0, 4) and checks[sloppy][1] == 4 and checks[sloppy][0] >= 3
    kept = study_results(study, resamples=0)
    assert kept.careless == (sloppy,) and kept.fit.votes == 12
    assert study_results(study, careless=True, resamples=0).fit.votes == 24


def test_concurrent_raters_lose_no_vote_and_a_killed_writer_loses_nothing_committed(tmp_path: Path) -> None:
    outputs, references = _outputs(3)
    create_study(tmp_path / "study", "load", outputs, references=references, trials_per_rater=30)
    truth = {"bicubic": -1.0, "lanczos": 0.0, "sharp": 1.0}
    counts: list[int] = []

    def rater(seed: int) -> None:
        study = Study.open(tmp_path / "study")  # a connection of its own, as each server worker has
        counts.append(_answer(study, study.new_rater(), truth, np.random.default_rng(seed)))
        study.close()

    threads = [threading.Thread(target=rater, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    study = Study.open(tmp_path / "study")
    assert counts == [30] * 4 and sum(study.raters().values()) == 120
    # a writer killed with SIGKILL after its 5th vote: the five are there, its open trial is offered again
    script = ("import sys, os, signal; from pathlib import Path; from core.study import Study\n"
              "s = Study.open(Path(sys.argv[1])); r = s.new_rater(); print(r, flush=True)\n"
              "for _ in range(5):\n    t = s.next_trial(r); s.vote(r, t.id, 'left')\n"
              "t = s.next_trial(r); print(t.id, flush=True); os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "study")], capture_output=True, text=True,
                          env=os.environ | {"PYTHONPATH": str(Path(core.__file__).parents[1])})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    killed, open_trial = proc.stdout.split()
    again = Study.open(tmp_path / "study")
    assert again.raters()[killed] == 5 and again.next_trial(killed).id == open_trial


def test_votes_collected_elsewhere_import_once(tmp_path: Path) -> None:
    outputs, _ = _outputs()
    study = create_study(tmp_path / "study", "offline", outputs)
    ids = {(image, method): blind for blind, (image, method, role) in study.outputs().items() if role == "output"}
    records = [{"trial": f"offline-{k}", "rater": "paper-rater", "image": "img0", "left": ids[("img0", "sharp")],
                "right": ids[("img0", m)], "choice": LEFT, "at": 1.0 + k} for k, m in enumerate(("bicubic", "lanczos"))]
    assert study.import_votes(records) == 2 and study.import_votes(records) == 0
    assert [v.winner() for v in study.votes()] == ["sharp", "sharp"]
    with pytest.raises(SettingsError, match="Not a vote of this study"):
        study.import_votes([records[0] | {"trial": "x", "left": "not-an-id"}])


def test_a_study_of_a_dataset_scores_its_outputs_and_tables_its_results(tmp_path: Path) -> None:
    dataset = core.open_dataset("samples", 4)
    dataset = core.evaluation.Dataset(dataset.name, 4, dataset.items[:2], dataset.lr_source)
    made = tmp_path / "made"
    made.mkdir()
    for item in dataset.items:
        lr, hr = dataset.load(item)
        core.write_png(made / f"{item.name}.png", core.evaluation.run_method("lanczos", lr, hr.shape[:2]))
    study = make_study(tmp_path / "study", dataset, ["bicubic", "lanczos", f"made={made}"], core.Upscaler.load,
                       metrics=["psnr", "niqe"])
    assert study.methods == ["bicubic", "lanczos", "made"] and study.images == [i.name for i in dataset.items]
    scores = study.scores()
    assert scores[(dataset.items[0].name, "made")] == scores[(dataset.items[0].name, "lanczos")]
    truth = {"bicubic": -1.0, "lanczos": 0.5, "made": 0.5}
    rng = np.random.default_rng(0)
    for _ in range(3):
        _answer(study, study.new_rater(), truth, rng)
    results = study_results(study, resamples=200)
    assert results.fit.ranking()[-1] == "bicubic" and set(results.metrics) == {"psnr", "niqe"}
    markdown = study_table(results)
    assert "| Method | BT score | 95 % interval | P(best) | Win rate |" in markdown and "| NIQE |" in markdown
    assert "\\toprule" in study_table(results, "latex") and study_table(results, "csv").startswith("Method,")
    payload = json.loads(json.dumps(results.payload()))
    assert payload["votes"] == results.fit.votes and [r["method"] for r in payload["ranking"]] == results.fit.ranking()
    with pytest.raises(SettingsError, match="not a method of a study"):
        make_study(tmp_path / "other", dataset, ["bicubic", "hr"], core.Upscaler.load)
