"""kubesim: a Kubernetes API simulator for tests (see README.md)."""

from .images import Image
from .simulator import Simulator

__all__ = ["Image", "Simulator"]
