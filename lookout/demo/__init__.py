"""`lookout demo`: the seed news site (``site``) and the demo's run over it (``run``).

Ships with Lookout; the tests' and benches' extensions of the site (fault routes, more feed
formats, generated bench pages, Arabic samples) live in tests/support/newssite.py.
"""

from lookout.demo.run import DEMO_CHAT, EXAMPLE_RULES, DemoSummary, TeeSender, TelegramTarget, demo_config, run_demo
from lookout.demo.site import SEEDS_DIR, NewsSite, SiteArticle, load_seed_articles

__all__ = [
    "DEMO_CHAT",
    "EXAMPLE_RULES",
    "SEEDS_DIR",
    "DemoSummary",
    "NewsSite",
    "SiteArticle",
    "TeeSender",
    "TelegramTarget",
    "demo_config",
    "load_seed_articles",
    "run_demo",
]
