"""`lookout sources`: placeholder until the Crawler issue lands."""

from lookout.commands import not_yet


def register(sub) -> None:
    p = sub.add_parser("sources", help="(Crawler issue)")
    p.set_defaults(func=not_yet("sources", "Crawler"))
