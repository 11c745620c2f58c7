"""Compare up to six methods on one image: run them on one output grid (:func:`compare_methods`), score and
map each output (:func:`score_outputs`: the registry's metrics, LR-PSNR, the SSIM and LR-consistency maps),
and show them in one self-contained viewer (:func:`viewer_html`; :func:`write_comparison` writes it as an
offline page to share)."""

from __future__ import annotations

from ._page import VIEWS, Pane, comparison_page, image_uri, panes_of, viewer_html, write_comparison
from ._run import LR_PSNR, MAX_METHODS, CompareJob, Comparison, compare_methods, score_outputs

__all__ = ["LR_PSNR", "MAX_METHODS", "VIEWS", "CompareJob", "Comparison", "Pane", "compare_methods",
           "comparison_page", "image_uri", "panes_of", "score_outputs", "viewer_html", "write_comparison"]
