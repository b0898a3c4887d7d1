"""Spiders, one per source kind (feed, sitemap, listing)."""
