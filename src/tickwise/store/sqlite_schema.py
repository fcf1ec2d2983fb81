"""The SQLite schema as numbered migrations, applied in order at open and recorded in
`schema_version`. A migration is never edited once released; changes come as a new one.

Design notes:
- The write-ahead journal is `order_chunks`, a batch of orders per row (see
  `tickwise.store.chunks`), with `journal_keys` for its duplicate check; `orders` (keyed by
  client order id, WITHOUT ROWID: the key is the row) holds them as rows, written from the
  chunks off the order path (step 8; before it, `orders` was the journal). It carries no
  index by client: that index cost a third of the journal's insert time on the hot path, and
  per-client lookups are rare, off-path queries that can afford a scan.
- `executions` is append-only. An order's current state is the state of its execution with the
  highest `rank_key` (see `tickwise.store.base.rank_keys`); no UPDATE per order on the hot path.
  A partial unique index allows at most one terminal event per order, so a replayed fill stream
  cannot double a fill.
- `retunes` is the append-only audit trail of re-tuning decisions, read per symbol newest first
  (index on symbol, ts_ns) and per run. Parameter names and values are JSON arrays; NaN and
  infinite scores are stored as NULL.
- `credentials` holds one row per (client, venue): the public parts (key id, account id) in clear
  and the secret parts as AES-GCM ciphertext with its nonce and the id of the master key that
  sealed it. Plaintext secrets never reach the store.
- `halt_events` is the append-only kill-switch log; the latest event per scope (index on scope,
  seq) says whether the scope is halted. AUTOINCREMENT keeps `seq`, the halt generation, from
  ever going back. `checkpoints` is keyed by name; it keeps a rowid because payloads can be large
  (WITHOUT ROWID suits small rows only).
"""

from __future__ import annotations

from tickwise.store.base import HALT, RESUME, TERMINAL_STATE_CODES
from tickwise.store.chunks import SIGNAL_KEY_LEN
from tickwise.store.migrations import numbered

_TERMINAL = ", ".join(str(code) for code in TERMINAL_STATE_CODES)
EXECUTIONS_SCHEMA = "exec"  # the name the executions' file is attached under

MIGRATIONS = numbered(
    (
        """
        CREATE TABLE instruments (
            idx          INTEGER PRIMARY KEY,
            symbol       TEXT    NOT NULL UNIQUE,
            asset_class  INTEGER NOT NULL,
            tick_size    REAL    NOT NULL,
            lot_size     REAL    NOT NULL,
            min_notional REAL    NOT NULL,
            fractionable INTEGER NOT NULL
        );
        CREATE TABLE clients (
            client_id           INTEGER PRIMARY KEY,
            name                TEXT    NOT NULL,
            venue               INTEGER NOT NULL,
            equity              REAL    NOT NULL,
            max_order_notional  REAL    NOT NULL,
            max_position_weight REAL    NOT NULL
        );
        CREATE TABLE accounts (
            account_id TEXT    PRIMARY KEY,
            client_id  INTEGER NOT NULL,
            venue      INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX accounts_by_client ON accounts (client_id);
        CREATE TABLE portfolios (
            portfolio_id INTEGER PRIMARY KEY,
            name         TEXT    NOT NULL,
            asset_class  INTEGER NOT NULL
        );
        CREATE TABLE portfolio_weights (
            portfolio_id INTEGER NOT NULL,
            position     INTEGER NOT NULL,
            instrument   INTEGER NOT NULL,
            weight       REAL    NOT NULL,
            PRIMARY KEY (portfolio_id, position)
        ) WITHOUT ROWID;
        CREATE TABLE subscriptions (
            client_id    INTEGER NOT NULL,
            portfolio_id INTEGER NOT NULL,
            allocation   REAL    NOT NULL,
            PRIMARY KEY (client_id, portfolio_id)
        ) WITHOUT ROWID;
        """,
        f"""
        CREATE TABLE runs (
            run_id       TEXT    PRIMARY KEY,
            started_ns   INTEGER NOT NULL,
            finished_ns  INTEGER,
            config_json  TEXT    NOT NULL,
            summary_json TEXT
        );
        CREATE TABLE orders (
            client_order_id TEXT    PRIMARY KEY,
            run_id          TEXT    NOT NULL,
            signal_id       INTEGER NOT NULL,
            client_id       INTEGER NOT NULL,
            venue           INTEGER NOT NULL,
            instrument      INTEGER NOT NULL,
            side            INTEGER NOT NULL,
            qty             REAL    NOT NULL,
            price           REAL    NOT NULL,
            ts_event        INTEGER NOT NULL,
            ts_recv         INTEGER NOT NULL,
            ts_signal       INTEGER NOT NULL,
            ts_alloc        INTEGER NOT NULL,
            ts_journal      INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX orders_by_run ON orders (run_id);
        CREATE TABLE executions (
            seq             INTEGER PRIMARY KEY,
            client_order_id TEXT    NOT NULL,
            client_id       INTEGER NOT NULL,
            instrument      INTEGER NOT NULL,
            side            INTEGER NOT NULL,
            state           INTEGER NOT NULL,
            rank_key        INTEGER NOT NULL,
            reason          INTEGER NOT NULL,
            fill_qty        REAL    NOT NULL,
            fill_price      REAL    NOT NULL,
            fee             REAL    NOT NULL,
            ts_sent         INTEGER NOT NULL,
            ts_ack          INTEGER NOT NULL
        );
        CREATE INDEX executions_by_order ON executions (client_order_id, rank_key);
        CREATE UNIQUE INDEX executions_one_terminal ON executions (client_order_id)
            WHERE state IN ({_TERMINAL});
        """,
        """
        CREATE TABLE retunes (
            seq                INTEGER PRIMARY KEY,
            run_id             TEXT    NOT NULL,
            instrument         INTEGER NOT NULL,
            symbol             TEXT    NOT NULL,
            strategy           TEXT    NOT NULL,
            ts_ns              INTEGER NOT NULL,
            train_from_ns      INTEGER NOT NULL,
            train_to_ns        INTEGER NOT NULL,
            valid_from_ns      INTEGER NOT NULL,
            valid_to_ns        INTEGER NOT NULL,
            param_names        TEXT    NOT NULL,
            live_params        TEXT    NOT NULL,
            winner_params      TEXT    NOT NULL,
            live_score         REAL,
            winner_score       REAL,
            winner_train_score REAL,
            winner_trades      INTEGER NOT NULL,
            sets_evaluated     INTEGER NOT NULL,
            decision           TEXT    NOT NULL CHECK (decision IN ('swap', 'keep', 'failed')),
            reason             TEXT    NOT NULL
        );
        CREATE INDEX retunes_by_symbol ON retunes (symbol, ts_ns);
        CREATE INDEX retunes_by_run ON retunes (run_id, ts_ns);
        """,
        """
        CREATE TABLE credentials (
            client_id     INTEGER NOT NULL,
            venue         INTEGER NOT NULL,
            kind          TEXT    NOT NULL,
            key_id        TEXT    NOT NULL,
            account_id    TEXT    NOT NULL,
            nonce         BLOB    NOT NULL,
            ciphertext    BLOB    NOT NULL,
            master_key_id TEXT    NOT NULL,
            updated_ns    INTEGER NOT NULL,
            PRIMARY KEY (client_id, venue)
        ) WITHOUT ROWID;
        CREATE INDEX credentials_by_master_key ON credentials (master_key_id);
        """,
        f"""
        CREATE TABLE halt_events (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            scope       TEXT    NOT NULL,
            action      TEXT    NOT NULL CHECK (action IN ('{HALT}', '{RESUME}')),
            reason      TEXT    NOT NULL,
            cancel_open INTEGER NOT NULL,
            actor       TEXT    NOT NULL,
            ts_ns       INTEGER NOT NULL
        );
        CREATE INDEX halt_events_by_scope ON halt_events (scope, seq);
        CREATE TABLE checkpoints (
            name    TEXT    PRIMARY KEY,
            ts_ns   INTEGER NOT NULL,
            payload BLOB    NOT NULL
        );
        """,
        """
        -- What the dashboard and the CLI ask per client and per instrument.
        CREATE INDEX orders_by_client ON orders (client_id, ts_journal);
        CREATE INDEX orders_by_instrument ON orders (instrument, ts_journal);
        CREATE INDEX executions_by_client ON executions (client_id, seq);
        CREATE INDEX executions_by_instrument ON executions (instrument, seq);
        """,
        f"""
        -- The orders lose the indexes step 6 gave them: an index on orders by client costs the
        -- journal 2.3x on a fan-out (every insert lands in another page), and the journal is
        -- on the order path. Per client and per instrument, orders are found through their
        -- executions, which the ledger records off it.
        DROP INDEX IF EXISTS orders_by_client;
        DROP INDEX IF EXISTS orders_by_instrument;
        -- The executions move to a database file of their own, attached as `{EXECUTIONS_SCHEMA}`
        -- (see the module doc). Safe to run again after a crash between the two files' commits
        -- (WAL commits each attached file on its own).
        CREATE TABLE IF NOT EXISTS {EXECUTIONS_SCHEMA}.executions (
            seq             INTEGER PRIMARY KEY,
            client_order_id TEXT    NOT NULL,
            client_id       INTEGER NOT NULL,
            instrument      INTEGER NOT NULL,
            side            INTEGER NOT NULL,
            state           INTEGER NOT NULL,
            rank_key        INTEGER NOT NULL,
            reason          INTEGER NOT NULL,
            fill_qty        REAL    NOT NULL,
            fill_price      REAL    NOT NULL,
            fee             REAL    NOT NULL,
            ts_sent         INTEGER NOT NULL,
            ts_ack          INTEGER NOT NULL
        );
        INSERT OR IGNORE INTO {EXECUTIONS_SCHEMA}.executions SELECT * FROM main.executions;
        DROP TABLE main.executions;
        CREATE INDEX IF NOT EXISTS {EXECUTIONS_SCHEMA}.executions_by_order
            ON executions (client_order_id, rank_key);
        CREATE UNIQUE INDEX IF NOT EXISTS {EXECUTIONS_SCHEMA}.executions_one_terminal
            ON executions (client_order_id) WHERE state IN ({_TERMINAL});
        CREATE INDEX IF NOT EXISTS {EXECUTIONS_SCHEMA}.executions_by_client
            ON executions (client_id, seq);
        CREATE INDEX IF NOT EXISTS {EXECUTIONS_SCHEMA}.executions_by_instrument
            ON executions (instrument, seq)
        """,
        f"""
        -- The order path journals a batch as one row of `order_chunks` (see
        -- tickwise.store.chunks). `journal_keys` finds the chunks that may hold an id: one row
        -- per signal per chunk, the first and last of the chunk's ids of that signal. Chunk 0
        -- stands for the orders journaled as rows before this step.
        CREATE TABLE order_chunks (
            chunk_id   INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id     TEXT    NOT NULL,
            n          INTEGER NOT NULL,
            ts_journal INTEGER NOT NULL,
            payload    BLOB    NOT NULL
        );
        CREATE TABLE journal_keys (
            signal_key TEXT    NOT NULL,
            first_id   TEXT    NOT NULL,
            last_id    TEXT    NOT NULL,
            chunk_id   INTEGER NOT NULL,
            PRIMARY KEY (signal_key, chunk_id)
        ) WITHOUT ROWID;
        -- The `orders` rows are written from the chunks off the order path, beside the
        -- executions they are read with, so writing them never takes the journal's lock.
        -- `journal_expanded` is the last chunk written out. Safe to run again after a crash
        -- between the two files' commits, as step 7.
        CREATE TABLE IF NOT EXISTS {EXECUTIONS_SCHEMA}.orders (
            client_order_id TEXT    PRIMARY KEY,
            run_id          TEXT    NOT NULL,
            signal_id       INTEGER NOT NULL,
            client_id       INTEGER NOT NULL,
            venue           INTEGER NOT NULL,
            instrument      INTEGER NOT NULL,
            side            INTEGER NOT NULL,
            qty             REAL    NOT NULL,
            price           REAL    NOT NULL,
            ts_event        INTEGER NOT NULL,
            ts_recv         INTEGER NOT NULL,
            ts_signal       INTEGER NOT NULL,
            ts_alloc        INTEGER NOT NULL,
            ts_journal      INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO {EXECUTIONS_SCHEMA}.orders SELECT * FROM main.orders;
        DROP TABLE main.orders;
        CREATE INDEX IF NOT EXISTS {EXECUTIONS_SCHEMA}.orders_by_run ON orders (run_id);
        INSERT INTO journal_keys
            SELECT substr(client_order_id, 1, {SIGNAL_KEY_LEN}), MIN(client_order_id),
                   MAX(client_order_id), 0
            FROM {EXECUTIONS_SCHEMA}.orders GROUP BY substr(client_order_id, 1, {SIGNAL_KEY_LEN});
        CREATE TABLE IF NOT EXISTS {EXECUTIONS_SCHEMA}.journal_expanded (
            through INTEGER NOT NULL
        );
        INSERT INTO {EXECUTIONS_SCHEMA}.journal_expanded
            SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM {EXECUTIONS_SCHEMA}.journal_expanded)
        """,
    )
)

LATEST_VERSION = MIGRATIONS[-1][0]
