"""Comparing methods on one image: the maps' numbers, the comparison run, and the offline page."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

import core
from core import compare, evaluation, metrics
from core.errors import SettingsError


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    hr = core.load_sample("chelsea")[40:136, 150:246]  # 96x96
    return core.imresize(hr, scale=0.25), hr


def test_the_ssim_map_is_the_ssim_score_window_by_window(pair) -> None:
    lr, hr = pair
    up = core.imresize(lr, size=hr.shape[:2])
    heat = metrics.ssim_map(up, hr)
    assert heat.values.shape == hr.shape[:2]
    assert np.isnan(heat.values[:5]).all() and np.isnan(heat.values[:, -5:]).all()  # no window fits there
    assert heat.summary == pytest.approx(metrics.ssim(up, hr), abs=1e-12)
    assert np.nanmean(heat.values) == pytest.approx(metrics.ssim(up, hr), abs=1e-12)
    same = metrics.ssim_map(hr, hr)
    assert np.allclose(same.values[5:-5, 5:-5], 1.0)
    colours = same.colours()
    assert (colours[20, 20] == metrics.HEAT_RAMP[255]).all() and (colours[0, 0] == 128).all()  # NaN is grey


def test_the_difference_map_is_in_8_bit_levels_whatever_the_depth() -> None:
    a = np.zeros((20, 30, 3), np.uint8)
    b = a.copy()
    b[5:10, 5:10] = (30, 60, 90)  # mean |a - b| = 60 levels there
    heat = metrics.difference_map(a, b)
    assert heat.values[7, 7] == pytest.approx(60) and heat.values[0, 0] == 0
    assert heat.summary == pytest.approx(60 * 25 / 600)
    deep = metrics.difference_map(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257)
    assert np.allclose(deep.values, heat.values)
    # the colour scale tops at the 99.5th percentile, rounded up to a whole level
    assert heat.high == np.ceil(np.percentile(heat.values, 99.5))
    with pytest.raises(ValueError, match="same shape"):
        metrics.difference_map(a, b[:10])


def test_lr_consistency_flags_detail_invented_against_the_input(pair) -> None:
    lr, hr = pair
    faithful = metrics.lr_consistency(hr, lr)  # the LR was made from it with the same kernel
    assert faithful.summary > 60
    invented = hr.copy()
    rng = np.random.default_rng(0)
    invented[48:80, 8:40] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # texture the input never had
    heat = metrics.lr_consistency(invented, lr)
    assert heat.summary < faithful.summary - 30
    assert heat.values.shape == hr.shape[:2]
    hot = np.argwhere(heat.values > heat.high / 2)
    assert hot.size and (hot[:, 0] >= 44).all() and (hot[:, 0] < 84).all() and (hot[:, 1] < 44).all()


def test_methods_run_on_one_grid_with_scores_and_maps(pair, weights_dir: Path) -> None:
    lr, hr = pair
    job = compare.CompareJob(lr, ("bicubic", "lanczos", "realesr-animevideov3"), reference=hr,
                             metrics=("psnr", "ssim"))
    loads = []

    def load(name: str) -> core.Upscaler:
        loads.append(name)
        return core.Upscaler.load(name, device="cpu", weights_dir=weights_dir)

    steps = []
    result = compare.compare_methods(job, load, progress=lambda d, t, label: steps.append((d, t)))
    assert list(result.outputs) == ["bicubic", "lanczos", "realesr-animevideov3", "hr"] and loads == [
        "realesr-animevideov3"]
    assert all(o.shape == hr.shape for o in result.outputs.values())
    assert np.array_equal(result.outputs["bicubic"], core.resize(lr, hr.shape[:2], evaluation.BASELINES["bicubic"]))
    assert result.scores["bicubic"]["psnr"] == pytest.approx(
        core.compute_metric("psnr", result.outputs["bicubic"], hr, crop_border=4))
    assert set(result.maps["lanczos"]) == {"ssim", "lr"}
    assert result.scores["lanczos"][compare.LR_PSNR] == result.maps["lanczos"]["lr"].summary
    assert steps[0] == (0, 4) and steps[-1] == (4, 4)

    with pytest.raises(SettingsError, match="At most 6"):
        compare.compare_methods(compare.CompareJob(lr, ("a", "b", "c", "d", "e", "f"), reference=hr), load)
    with pytest.raises(SettingsError, match="HR reference"):
        compare.compare_methods(compare.CompareJob(lr, ("bicubic", "hr")), load)
    with pytest.raises(SettingsError, match="same scene"):
        compare.compare_methods(compare.CompareJob(lr, ("bicubic",), reference=hr[:, :40]), load)
    with pytest.raises(core.CancelledError):
        compare.compare_methods(compare.CompareJob(lr, ("bicubic",)), load, cancel=lambda: True)
    plain = compare.compare_methods(compare.CompareJob(lr, ("bicubic",), outscale=2, metrics=()), load)
    assert plain.outputs["bicubic"].shape[:2] == (48, 48) and set(plain.maps["bicubic"]) == {"lr"}


def _images_in(page: str) -> list[np.ndarray]:
    return [core.decode_image(base64.b64decode(data)) for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)",
                                                                              page)]


def test_the_page_holds_every_output_at_full_resolution_and_asks_for_nothing(pair, tmp_path: Path) -> None:
    lr, hr = pair
    result = compare.compare_methods(compare.CompareJob(lr, ("bicubic", "lanczos"), reference=hr,
                                                        metrics=("psnr",)), lambda name: None)
    page = compare.comparison_page(result, title="a </script> title")
    images = _images_in(page)
    for output in result.outputs.values():  # each output, bit for bit, at full resolution
        assert any(i.shape == output.shape and np.array_equal(i, output) for i in images)
    ssim_colours = result.maps["bicubic"]["ssim"].colours()
    assert any(np.array_equal(i, ssim_colours) for i in images)  # the maps, as the core computed them
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)  # no outside resource
    assert "default-src 'none'" in page and "a &lt;/script&gt; title" in page
    assert page.count("<script>") == 1 and "</script> title" not in page
    table = page[page.index('<table id="scores"'):]
    assert '<td class="best">' in table and "HR reference" in table
    path = compare.write_comparison(tmp_path / "c.html", result, title="t")
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert [p.name for p in tmp_path.iterdir()] == ["c.html"]  # written atomically: no temporary left


def test_the_viewer_shows_previews_on_the_grid_it_is_given(pair) -> None:
    lr, hr = pair
    panes = [compare.Pane("a", hr), compare.Pane("b", hr[::-1].copy(), "PSNR 1")]
    html = compare.viewer_html(panes, size=(48, 48), height=300, one_to_one=2.0)
    assert all(i.shape[:2] == (48, 48) for i in _images_in(html))
    assert '"grid": [48, 48]' in html and '"one": 2.0' in html and "300px" in html
    with pytest.raises(ValueError, match="at least two"):
        compare.viewer_html(panes[:1])


def test_names_that_look_like_placeholders_or_markup_are_shown_as_written(pair) -> None:
    """The template is filled in one pass and its JSON escaped for a script: a label holding a placeholder's
    name, ``<!--`` or ``</script>`` is text, and the page keeps one table, one header and one script."""
    lr, hr = pair
    outputs = {"__TABLE__": core.resize(lr, hr.shape[:2], "matlab"), "<!-- a": core.resize(lr, hr.shape[:2], "lanczos"),
               "</script><b>x": hr}
    result = compare.score_outputs(lr, outputs, hr, ("psnr",))
    page = compare.comparison_page(result, title="__HEADER__ and __DATA__", note="__NOTE__")
    assert page.count('<table id="scores"') == 1 and page.count("<h1>") == 1
    assert "<h1>__HEADER__ and __DATA__</h1>" in page
    script = page[page.index("<script>"):page.index("</script>")]
    assert "<!--" not in script and "</" not in script[8:]
    data = json.loads(re.search(r"const DATA = (.*?);  //", script).group(1))
    assert [p["label"] for p in data["panes"]] == ["__TABLE__", "<!-- a", "</script><b>x"]
    assert "<b>x" not in page.replace("&lt;/script&gt;&lt;b&gt;x", "")  # the table shows it as text


def test_one_pair_has_one_number_everywhere_and_the_ssim_map_explains_it(tmp_path: Path) -> None:
    """Issue 38.5: the SSIM map was labelled 0.7837 beside an SSIM of 0.7845 (the map had no crop), and scoring
    lived in three places with different crop policies. compare, evaluate and score_images now agree exactly."""
    hr = core.load_sample("chelsea")[:128, :160]
    lr = core.imresize(hr, 0.25)
    core.write_png(tmp_path / "hr" / "cat.png", hr)
    metrics = ("psnr", "ssim", "niqe")
    compared = core.compare.score_outputs(lr, {"bicubic": core.imresize(lr, 4)}, hr, metrics)
    shown = compared.scores["bicubic"]
    ssim_map = compared.maps["bicubic"]["ssim"]
    assert ssim_map.summary == shown["ssim"]  # to the last digit
    assert np.isnan(ssim_map.values[:9]).all() and np.isfinite(ssim_map.values[9:-9, 9:-9]).all()  # 4 + 5 px
    row = core.evaluate(core.open_dataset(tmp_path / "hr", 4), ["bicubic"], list(metrics)).rows[0]
    assert {m: shown[m] for m in metrics} == row.metrics
    assert core.score_images({"b": core.imresize(lr, 4)}, hr, metrics=metrics, crop_border=4)["b"] == row.metrics
    assert shown["ssim"] == core.metrics.ssim(core.imresize(lr, 4), hr, crop_border=4)
    assert shown["ssim"] != core.metrics.ssim(core.imresize(lr, 4), hr)  # the crop is what the map lacked


def test_scoring_comes_cheap_first_stops_on_cancel_keeping_what_finished_and_resumes(pair) -> None:
    """Issue 38.17: the learned metrics held the Upscale page for minutes with no progress and no cancel. Scoring
    now goes in steps (hand-made metrics of every output, then LR-PSNR and maps, then each learned metric), says
    each step, publishes a copy after each, stops at a cancel with what finished, and resumes from it."""
    lr, hr = pair
    outputs = {"bicubic": core.resize(lr, hr.shape[:2], "matlab"), "lanczos": core.resize(lr, hr.shape[:2], "lanczos")}
    calls: list[str] = []

    def slow(image, reference, options) -> float:
        calls.append("slow")
        return float(np.mean(np.abs(image.astype(float) - reference)))

    learned = core.metrics.MetricInfo(
        name="slow-net", title="Slow", kind="full-reference", higher_is_better=False, unit="", description="a test's",
        value_range=(0.0, 255.0), colour="RGB", crop="none", reference="none", compute=slow,
        weights=(core.metrics.WeightsFile("slow.pth", "https://example.invalid/slow.pth", "0" * 64, "MIT", 1),))
    with core.METRICS.scoped():
        core.METRICS.add(learned)
        steps, published = [], []
        stop = {"now": False}

        def progress(done: float, total: int, message: str) -> None:
            steps.append(message)
            stop["now"] = message == "Slow of bicubic"  # cancel once the first learned step has begun

        result = compare.score_outputs(lr, outputs, hr, ("psnr", "slow-net"), progress=progress,
                                       cancel=lambda: stop["now"], publish=published.append)
        assert steps == ["hand-made metrics of bicubic", "hand-made metrics of lanczos", "LR-PSNR and maps of bicubic",
                         "LR-PSNR and maps of lanczos", "Slow of bicubic"]
        assert result.cancelled and calls == ["slow"]  # the step under way when cancelled finishes, no other
        assert len(published) == 5 and result.missing("lanczos") == ("slow-net",) and not result.missing("bicubic")
        assert published[1].scores["lanczos"].keys() == {"psnr"} and not published[1].maps  # cheap first
        assert "slow-net" not in published[4].scores["lanczos"] and published[4].missing("lanczos") == ("slow-net",)
        published[0].scores["bicubic"]["psnr"] = -1.0  # each published copy is its own
        assert result.scores["bicubic"]["psnr"] > 20

        stop["now"], calls[:] = False, []
        cut = compare.score_outputs(lr, outputs, hr, ("psnr", "slow-net"), cancel=lambda: len(calls) == 1)
        assert cut.cancelled and cut.missing("lanczos") == ("slow-net",) and cut.missing("bicubic") == ()
        calls[:] = []
        whole = compare.score_outputs(lr, outputs, hr, ("psnr", "slow-net"), start=cut)
        assert calls == ["slow"] and not whole.cancelled  # only what the cancel left out is computed
        assert list(whole.scores["lanczos"]) == ["psnr", "slow-net", compare.LR_PSNR]  # the registry's order
        assert whole.scores == compare.score_outputs(lr, outputs, hr, ("psnr", "slow-net")).scores
    assert "slow-net" not in core.METRICS  # the scope ended


def test_images_made_elsewhere_are_compared_without_an_input_as_imgsli_does(pair, tmp_path: Path) -> None:
    """Images of one scene that the studio did not make: the first one's size is the grid, scores against the
    reference where one is given, no LR-PSNR (there is no input), and a page that says so."""
    lr, hr = pair
    core.write_png(tmp_path / "soft.png", core.imresize(lr, size=hr.shape[:2]))
    core.write_png(tmp_path / "sharp.png", evaluation.run_method("lanczos", lr, hr.shape[:2]))
    core.write_png(tmp_path / "small.png", lr)
    specs = (f"soft={tmp_path / 'soft.png'}", f"sharp={tmp_path / 'sharp.png'}")
    result = compare.compare_methods(compare.CompareJob(None, specs, reference=hr, metrics=("psnr",)), load=None)
    assert list(result.outputs) == ["soft", "sharp", "hr"]
    assert result.scores["soft"] == {"psnr": pytest.approx(metrics.psnr(core.imresize(lr, size=hr.shape[:2]), hr))}
    assert all("lr" not in views for views in result.maps.values()) and all("ssim" in v for v in result.maps.values())
    page = compare.comparison_page(result, title="three")
    assert "96x96, no input" in page and "LR-PSNR" not in page.split('id="scores"')[1]
    alone = compare.compare_methods(compare.CompareJob(None, specs, metrics=("niqe",)), load=None)
    assert alone.outputs["soft"].shape == hr.shape and list(alone.outputs) == ["soft", "sharp"]
    with pytest.raises(SettingsError, match="bicubic needs an input image"):
        compare.compare_methods(compare.CompareJob(None, ("bicubic", *specs)), load=None)
    with pytest.raises(core.StudioError, match="small.png is 24x24; it is compared at 96x96"):
        compare.compare_methods(compare.CompareJob(None, (*specs, f"small={tmp_path / 'small.png'}")), load=None)
