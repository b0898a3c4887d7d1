"""`lookout alerts`: placeholder until the Alerts issue lands."""

from lookout.commands import not_yet


def register(sub) -> None:
    p = sub.add_parser("alerts", help="(Alerts issue)")
    p.set_defaults(func=not_yet("alerts", "Alerts"))
