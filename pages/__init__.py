"""Dashboard pages: one module per page, each a thin ``render()`` function, and their registry."""

from __future__ import annotations

from pages import benchmark, degradation_lab, models, study, upscale

# url path -> (render, title, icon); the first is the home page
PAGES = {
    "upscale": (upscale.render, "Upscale & Compare", ":material/compare:"),
    "benchmark": (benchmark.render, "Benchmark", ":material/bar_chart:"),
    "degradation": (degradation_lab.render, "Degradation Lab", ":material/science:"),
    "study": (study.render, "Study", ":material/how_to_vote:"),
    "models": (models.render, "Models & System", ":material/memory:"),
}
