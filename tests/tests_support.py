"""Paths shared by test modules (conftest holds fixtures; this holds plain values)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = ROOT / "rules" / "examples" / "north-aleppo.yaml"
