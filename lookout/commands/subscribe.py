"""`lookout subscribe`: placeholder until the Alerts issue lands."""

from lookout.commands import not_yet


def register(sub) -> None:
    p = sub.add_parser("subscribe", help="(Alerts issue)")
    p.set_defaults(func=not_yet("subscribe", "Alerts"))
