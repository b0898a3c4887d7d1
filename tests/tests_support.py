"""Paths and small helpers shared by test modules (conftest holds fixtures; this holds plain
values)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = ROOT / "rules" / "examples" / "north-aleppo.yaml"
EXAMPLE_CHANNEL = "@north_aleppo_alerts"
_NOTIFY_OFF = '    # notify: ["@your_channel"]'


def example_rules_notifying(folder: Path, channel: str = EXAMPLE_CHANNEL) -> Path:
    """A copy of the example rules with ``notify:`` switched on for ``channel``, as an operator
    enables it (the shipped file notifies no one)."""
    text = EXAMPLE_RULES.read_text(encoding="utf-8")
    assert _NOTIFY_OFF in text, "the example rules keep their notify line commented out"
    path = folder / EXAMPLE_RULES.name
    path.write_text(text.replace(_NOTIFY_OFF, f'    notify: ["{channel}"]'), encoding="utf-8")
    return path
