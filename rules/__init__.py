"""The rule packs shipped with `retention`, installed as the package ``retention.packs``.

This directory is the source of truth (see README.md beside this file); pyproject.toml maps it
to ``retention.packs`` so the packs travel inside the wheel. Read them with
:mod:`retention.packs`, never by path.
"""
