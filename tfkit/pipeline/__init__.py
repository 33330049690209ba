"""The extract pipeline: configured sources in, a signed BagIt package out (see extract.py)."""

from tfkit.pipeline.demo import prepare_demo, run_demo
from tfkit.pipeline.extract import ExtractResult, SourceRun, run_extract

__all__ = ["ExtractResult", "SourceRun", "prepare_demo", "run_demo", "run_extract"]
