"""Checkpoints: a run's journal written to its run store, and reading it back to resume or retry."""

from .journal import Checkpointer
from .state import Checkpoint, CheckpointError, ResumeMode, load_checkpoint, read_meta

__all__ = ["Checkpoint", "CheckpointError", "Checkpointer", "ResumeMode", "load_checkpoint", "read_meta"]
