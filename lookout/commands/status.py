"""`lookout status`: placeholder until the Service issue lands."""

from lookout.commands import not_yet


def register(sub) -> None:
    p = sub.add_parser("status", help="(Service issue)")
    p.set_defaults(func=not_yet("status", "Service"))
