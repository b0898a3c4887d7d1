"""`lookout demo`: placeholder until the Foundation issue lands."""

from lookout.commands import not_yet


def register(sub) -> None:
    p = sub.add_parser("demo", help="(Foundation issue)")
    p.set_defaults(func=not_yet("demo", "Foundation"))
