"""Test and bench scaffolding: never shipped, never imported by the packages."""
