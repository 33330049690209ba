"""The run report (report.html beside each package): see tfkit.report.render for its fields."""

from tfkit.report.render import NOT_RUN, RunReport, render_run_report, write_run_report

__all__ = ["NOT_RUN", "RunReport", "render_run_report", "write_run_report"]
