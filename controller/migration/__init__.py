"""Migration steps and the plan that runs them (see ``plan`` and ``steps``; the engine is
``controller.migrator.Migrator``)."""

from .plan import MigrationContext, MigrationRecord, Plan, Step, StepHook
from .steps import Load, Quiesce, Redirect, Release, Resume, Save, Suspend, Validate, protocol_steps

__all__ = ["MigrationContext", "MigrationRecord", "Plan", "Step", "StepHook", "Suspend", "Quiesce", "Save",
           "Validate", "Load", "Redirect", "Resume", "Release", "protocol_steps"]
