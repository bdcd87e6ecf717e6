"""Hypothesis profiles come from parity/profiles.py (the one place they are chosen)."""

from parity import profiles

profiles.load()
