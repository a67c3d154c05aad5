"""Fixtures for the object-store tests: the moto S3 server (``moto_endpoint``) is in
``tests/conftest.py``, shared with the checkpoint tests."""
