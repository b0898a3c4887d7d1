"""`lookout crawl`: placeholder until the Crawler issue lands."""

from lookout.commands import not_yet


def register(sub) -> None:
    p = sub.add_parser("crawl", help="(Crawler issue)")
    p.set_defaults(func=not_yet("crawl", "Crawler"))
