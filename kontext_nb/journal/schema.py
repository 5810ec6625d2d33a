"""The journal's schema: SQLite's migrations (``PRAGMA user_version``), and PostgreSQL's, written once for the
current shape (no PostgreSQL journal predates it) through the database interface's type translation (``ddl``).
"""

from __future__ import annotations

from . import ledger

MIGRATIONS: tuple[str, ...] = (
    # 1: the jobs table
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        status TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        prompt TEXT NOT NULL,
        arguments TEXT NOT NULL,
        seed INTEGER,
        request_id TEXT,
        parent_id INTEGER,
        tags TEXT NOT NULL DEFAULT '[]',
        source TEXT,
        session TEXT,
        input_hashes TEXT NOT NULL DEFAULT '[]',
        cache_key TEXT,
        cached INTEGER NOT NULL DEFAULT 0,
        cost REAL NOT NULL DEFAULT 0,
        num_images INTEGER NOT NULL DEFAULT 0,
        timings TEXT,
        nsfw TEXT,
        output_prompt TEXT,
        files TEXT NOT NULL DEFAULT '[]',
        error TEXT,
        error_type TEXT
    );
    CREATE INDEX jobs_created ON jobs (created);
    CREATE INDEX jobs_request ON jobs (request_id);
    CREATE INDEX jobs_cache ON jobs (cache_key);
    CREATE INDEX jobs_parent ON jobs (parent_id);
    CREATE INDEX jobs_status ON jobs (status);
    """,
    # 2: money held for a job while it may still be billed (its price, from submit until it ends)
    """
    ALTER TABLE jobs ADD COLUMN reserved REAL NOT NULL DEFAULT 0
    """,
    # 3: judging: a job's star rating and change scores; blind pairwise votes (who voted when)
    """
    ALTER TABLE jobs ADD COLUMN rating INTEGER;
    ALTER TABLE jobs ADD COLUMN scores TEXT;
    CREATE TABLE votes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created REAL NOT NULL,
        winner_id INTEGER NOT NULL,
        loser_id INTEGER NOT NULL,
        tie INTEGER NOT NULL DEFAULT 0,
        voter TEXT NOT NULL,
        session TEXT
    );
    CREATE INDEX votes_winner ON votes (winner_id);
    CREATE INDEX votes_loser ON votes (loser_id);
    """,
    # 4: every parent of a job (a multi-reference edit has 2-4), in order; parent_id stays the first, for older readers
    """
    ALTER TABLE jobs ADD COLUMN parents TEXT NOT NULL DEFAULT '[]';
    UPDATE jobs SET parents = json_array(parent_id) WHERE parent_id IS NOT NULL;
    """,
    # 5: what fal says it billed for a job (its x-fal-billable-units header), when it says so
    """
    ALTER TABLE jobs ADD COLUMN billable_units REAL
    """,
    # 6: 1 while a job is provably not sent yet (its row is written before the submit; cleared, by its owner only,
    # just before the request goes out): a kernel joined to it may take it over only then (Journal.claim_unsent).
    # Rows written before this column, or by an older kontext_nb, count as perhaps sent.
    """
    ALTER TABLE jobs ADD COLUMN unsent INTEGER NOT NULL DEFAULT 0
    """,
    # 7: the append-only spend ledger (journal/ledger.py), filled once from the jobs' cost and reserved columns
    ledger.MIGRATION,
    # 8: which host wrote a job's files, into which runs folder (a journal on PostgreSQL is shared by hosts whose runs
    # folders differ; on SQLite the journal's own folder is always the one)
    """
    ALTER TABLE jobs ADD COLUMN host TEXT;
    ALTER TABLE jobs ADD COLUMN folder TEXT
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

OWNERS = """
    CREATE TABLE owners (
        session TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        seen REAL NOT NULL
    )
"""
"""Heartbeats (journal/heartbeat.py): a kernel is alive while its row was seen recently, by the server's clock."""

PG_MIGRATIONS: tuple[str, ...] = (
    ";".join(
        (
            MIGRATIONS[0],
            MIGRATIONS[1],
            MIGRATIONS[2],
            "ALTER TABLE jobs ADD COLUMN parents TEXT NOT NULL DEFAULT '[]'",
            MIGRATIONS[4],
            MIGRATIONS[5],
            ledger.SCHEMA,
            MIGRATIONS[7],
            # the prompt casefolded by Python, for search (PostgreSQL's lower() depends on the server's locale)
            "ALTER TABLE jobs ADD COLUMN prompt_fold TEXT",
            OWNERS,
        )
    ),
)
"""PostgreSQL's journal: the whole current schema at version 1 (schema name 'journal' in kx_schema)."""
