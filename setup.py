"""Kept for tools that still look for it; the metadata lives in pyproject.toml."""

from setuptools import setup

setup()
