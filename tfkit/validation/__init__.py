"""Typed, data-first reports: Problem records and the validation report (JSON + rich table).

Public API: Problem, ValidationReport, REPORT_FORMAT, REPORT_VERSION, reports_to_dict.
"""

from tfkit.validation.report import REPORT_FORMAT, REPORT_VERSION, Problem, ValidationReport, reports_to_dict

__all__ = ["Problem", "ValidationReport", "REPORT_FORMAT", "REPORT_VERSION", "reports_to_dict"]
