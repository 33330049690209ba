"""Probabilistic record linkage (Fellegi-Sunter), declared like Splink, vectorised end to end.

Stages, one module each: standardise -> blocking -> comparisons -> training/model -> predict ->
clustering -> evaluate, plus report (HTML). `Linker` groups the verbs by stage; `link()` runs a job.
"""

from .blocking import BlockingReport, BlockingRule
from .comparisons import Comparison
from .linker import Linker, LinkResult, link
from .model import LinkageModel, Settings

__all__ = ["BlockingReport", "BlockingRule", "Comparison", "LinkResult", "Linker", "LinkageModel", "Settings", "link"]
