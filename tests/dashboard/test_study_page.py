"""The Study page, driven with Streamlit's AppTest: a study made in the background, its links, its live results.
(helpers: :mod:`tests.dashboard.apptest`)."""

from __future__ import annotations

import pytest

import core
from core.study import LEFT, RIGHT, TIE, Study
from tests.dashboard.apptest import open_page, wait

pytestmark = pytest.mark.usefixtures("results_dir")


@pytest.mark.slow
def test_a_study_is_made_shared_and_its_votes_read_on_the_page() -> None:
    at = open_page("study")
    at.multiselect(key="study_methods").set_value(["bicubic", "lanczos", "bicubic-opencv"]).run()
    at.number_input(key="study_images").set_value(2).run()
    at.button(key="study_create").click().run()
    wait(at, lambda a: any("is ready" in s.value for s in a.success))
    assert any("No votes yet" in i.value for i in at.info)
    links = [c.value for c in at.code]
    folder = next(core.default_results_dir().glob("studies/*/study.sqlite")).parent
    study = Study.open(folder)
    assert links[0] == f"/v1/studies/{folder.name}/rate?key={study.meta('rater_key')}"
    assert study.meta("owner_key") in links[1] and study.methods == ["bicubic", "bicubic-opencv", "lanczos"]
    ids = study.outputs()
    for _ in range(2):  # two raters who always prefer lanczos, answering every trial
        rater = study.new_rater()
        while (trial := study.next_trial(rater)) is not None:
            (_, a, role_a), (_, b, role_b) = ids[trial.left], ids[trial.right]
            if role_a == role_b == "output":
                choice = LEFT if a == "lanczos" else RIGHT if b == "lanczos" else TIE
            elif "hr" in (role_a, role_b):
                choice = LEFT if role_a == "hr" else RIGHT
            else:  # an output against its copy
                choice = TIE
            study.vote(rater, trial.id, choice)
    at.button(key="study_refresh").click().run()
    assert not at.error and not at.exception, [e.value for e in at.error]
    ranking = at.dataframe[0].value
    assert ranking["method"].iloc[0] == "lanczos" and (ranking["95 % low"] <= ranking["BT score"]).all()
    agreement = at.dataframe[1].value
    assert set(agreement["metric"]) >= {"PSNR", "NIQE"}
    assert "| Method | BT score |" in at.code[-1].value
