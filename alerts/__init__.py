"""Telegram delivery: alert formatting, subscriptions, the outbox dispatcher and the bot."""
