"""Create `app.db` for README.md's worked example: the accounts and support tickets whose plan the
README prints as of 2026-11-21 09:00 Europe/Berlin.

    python deploy/examples/worked_example.py [DIRECTORY]   # default: the current directory

Account 4411 is in the dispute (held by case-2026-017); account 100 was closed in September
(its tickets' contact details are due for pseudonymization), 300 a week ago (not yet); tickets
1 and 2 were closed more than two years ago (1 is 4411's, so held; 2 is overdue).
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

ACCOUNTS = [
    (4411, "2023-02-01 10:00:00", None),
    (100, "2023-05-01 10:00:00", "2026-09-01 12:00:00"),
    (200, "2024-01-15 10:00:00", None),
    (300, "2025-03-01 10:00:00", "2026-11-15 12:00:00"),
]
TICKETS = [
    (1, 4411, "closed", "2024-06-01 10:00:00", "ops@customer4411.example", "203.0.113.7"),
    (2, 200, "resolved", "2024-09-01 10:00:00", "anna@example.org", "198.51.100.23"),
    (3, 100, "closed", "2025-06-01 10:00:00", "ben@example.net", "192.0.2.45"),
    (4, 100, "open", "2025-01-01 10:00:00", "ben@example.net", "192.0.2.46"),
    (5, 300, "closed", "2026-01-01 10:00:00", "cleo@example.com", "2001:db8::1"),
]


def create(directory: Path) -> Path:
    """Write `directory/app.db` afresh with the example's rows; its path."""
    path = directory / "app.db"
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, "
            "closed_at TEXT)"
        )
        connection.execute(
            "CREATE TABLE support_tickets (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL "
            "REFERENCES accounts (id), status TEXT NOT NULL, created_at TEXT NOT NULL, "
            "requester_email TEXT, client_ip TEXT)"
        )
        connection.executemany("INSERT INTO accounts VALUES (?, ?, ?)", ACCOUNTS)
        connection.executemany("INSERT INTO support_tickets VALUES (?, ?, ?, ?, ?, ?)", TICKETS)
    connection.close()
    return path


if __name__ == "__main__":
    print(f"created {create(Path(sys.argv[1] if len(sys.argv) > 1 else '.'))}")
