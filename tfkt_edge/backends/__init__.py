"""Inference backends, chosen by name."""

from .base import BACKENDS, Backend, create_backend

__all__ = ["BACKENDS", "Backend", "create_backend"]
