"""The CLI's commands as Python functions with the same names (``algolia-profiles segments build``
is ``segments_build``). Each is the function the command itself calls."""

from .demo import run_demo as demo
from .emulator import Emulator as emulator
from .load.erasure import forget_users as forget
from .pipeline import load_profiles as load
from .load.pipeline import make_pipeline
from .segments.report import write_report as report
from .segments import build_segments as segments_build
from .segments import plan_segments as segments_plan
from .segments.dbt import write_dbt_project as segments_dbt
from .segments.export import export_audience as export
from .load.status import doctor, status

__all__ = ["demo", "doctor", "emulator", "export", "forget", "load", "make_pipeline", "report", "segments_build", "segments_dbt", "segments_plan", "status"]
