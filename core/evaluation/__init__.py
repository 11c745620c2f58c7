"""Evaluation: datasets (folders, zips, DIV2K, pairs made by a degradation), the scoring loop that
both executors (this machine, :mod:`core.cluster`) run, the resumable store, and sweeps."""

from __future__ import annotations

from ._coverage import coverage_notes
from ._datasets import Dataset, DatasetItem, ImageRef, open_dataset
from ._fetch import DIV2K_URL, download_div2k, extract_zip
from ._outside import OutsideMethod, OutsideOutputs, fit_to_region, match_outputs, outside_name, split_methods
from ._scoring import (
    BASELINES,
    HR_METHOD,
    Pair,
    Scoring,
    Upscalers,
    check_dataset,
    compute_row,
    error_row,
    evaluate,
    outside_outputs,
    run_method,
    stored_row,
)
from ._store import EvalHooks, EvalResult, EvalRow, EvalSettings, ResultDB, read_results, write_results
from ._sweep import SWEEP_PARAMETERS, SweepPoint, run_sweep, sweep_params
from ._table import TABLE_FORMATS, TableFormat, results_table

__all__ = ["BASELINES", "DIV2K_URL", "HR_METHOD", "SWEEP_PARAMETERS", "TABLE_FORMATS", "Dataset", "DatasetItem",
           "EvalHooks", "EvalResult", "EvalRow", "EvalSettings", "ImageRef", "OutsideMethod", "OutsideOutputs",
           "Pair", "ResultDB", "Scoring", "SweepPoint", "TableFormat", "Upscalers", "check_dataset", "compute_row",
           "coverage_notes", "download_div2k", "error_row", "evaluate", "extract_zip", "fit_to_region",
           "match_outputs", "open_dataset", "outside_name", "outside_outputs", "read_results", "results_table",
           "run_method", "run_sweep", "split_methods", "stored_row", "sweep_params", "write_results"]
