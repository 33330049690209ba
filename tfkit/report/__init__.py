"""The run report (report.html beside each package): see tfkit.report.render for the context keys."""

from tfkit.report.render import NOT_RUN, render_run_report, write_run_report

__all__ = ["NOT_RUN", "render_run_report", "write_run_report"]
