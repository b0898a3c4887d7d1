"""The Scrapy project: sources, spiders, extraction and storage of cleaned articles."""
