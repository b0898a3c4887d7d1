"""Telegram delivery, standing on the rules and the store (never on the crawler or ``lookout``).

``keys`` names what an alert is sent for; ``subscriptions`` routes an article to chats and
``outbox`` queues the alerts; ``dispatcher`` sends them through a ``telegram`` sender, paced by
``ratelimit`` and held by ``chatprefs``; ``format`` renders them. The bot is ``bot`` (wiring),
``subscribercommands`` and ``admincommands`` on ``botbase``.
"""
