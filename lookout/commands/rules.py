"""`lookout rules`: placeholder until the Rules issue lands."""

from lookout.commands import not_yet


def register(sub) -> None:
    p = sub.add_parser("rules", help="(Rules issue)")
    p.set_defaults(func=not_yet("rules", "Rules"))
