"""The PostgreSQL schema as numbered migrations, the same steps as SQLite's (see
`tickwise.store.migrations`), applied at open under an advisory lock and recorded in
`schema_version`. A migration is never edited once released; changes come as a new one.

Design notes (the SQLite schema's notes hold too; what differs):
- Types are exact: ids and counts are INTEGER or BIGINT, prices and quantities DOUBLE PRECISION,
  flags BOOLEAN, secrets and payloads BYTEA. Every nanosecond timestamp is BIGINT.
- Text that queries sort or look up by (client order ids, symbols, scopes, names) is
  `COLLATE "C"`: byte order, the order SQLite's BINARY collation gives, so both back ends list
  rows alike; it is also the cheapest collation to compare in a B-tree.
- Sequence-numbered tables (`executions`, `retunes`, `halt_events`) use identity columns.
- The journal's column types are also the binary COPY types the hot path writes
  (`ORDER_TYPES`, `EXECUTION_TYPES`); a test checks them against a migrated database.
"""

from __future__ import annotations

from tickwise.store.base import HALT, RESUME, TERMINAL_STATE_CODES
from tickwise.store.migrations import numbered

_TERMINAL = ", ".join(str(code) for code in TERMINAL_STATE_CODES)

# Binary COPY types of `tickwise.store.rows.ORDER_COLUMNS` and `EXECUTION_COLUMNS`, as migration 2
# creates them.
ORDER_TYPES = (
    "text",
    "text",
    "int8",
    "int4",
    "int2",
    "int8",
    "int2",
    "float8",
    "float8",
    "int8",
    "int8",
    "int8",
    "int8",
    "int8",
)
EXECUTION_TYPES = (
    "text",
    "int4",
    "int8",
    "int2",
    "int2",
    "int4",
    "int2",
    "float8",
    "float8",
    "float8",
    "int8",
    "int8",
)

MIGRATIONS = numbered(
    (
        """
        CREATE TABLE instruments (
            idx          BIGINT           PRIMARY KEY,
            symbol       TEXT COLLATE "C" NOT NULL UNIQUE,
            asset_class  SMALLINT         NOT NULL,
            tick_size    DOUBLE PRECISION NOT NULL,
            lot_size     DOUBLE PRECISION NOT NULL,
            min_notional DOUBLE PRECISION NOT NULL,
            fractionable BOOLEAN          NOT NULL
        );
        CREATE TABLE clients (
            client_id           INTEGER          PRIMARY KEY,
            name                TEXT             NOT NULL,
            venue               SMALLINT         NOT NULL,
            equity              DOUBLE PRECISION NOT NULL,
            max_order_notional  DOUBLE PRECISION NOT NULL,
            max_position_weight DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE accounts (
            account_id TEXT COLLATE "C" PRIMARY KEY,
            client_id  INTEGER          NOT NULL,
            venue      SMALLINT         NOT NULL
        );
        CREATE INDEX accounts_by_client ON accounts (client_id);
        CREATE TABLE portfolios (
            portfolio_id INTEGER  PRIMARY KEY,
            name         TEXT     NOT NULL,
            asset_class  SMALLINT NOT NULL
        );
        CREATE TABLE portfolio_weights (
            portfolio_id INTEGER          NOT NULL,
            position     INTEGER          NOT NULL,
            instrument   BIGINT           NOT NULL,
            weight       DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (portfolio_id, position)
        );
        CREATE TABLE subscriptions (
            client_id    INTEGER          NOT NULL,
            portfolio_id INTEGER          NOT NULL,
            allocation   DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (client_id, portfolio_id)
        );
        """,
        f"""
        CREATE TABLE runs (
            run_id       TEXT COLLATE "C" PRIMARY KEY,
            started_ns   BIGINT           NOT NULL,
            finished_ns  BIGINT,
            config_json  TEXT             NOT NULL,
            summary_json TEXT
        );
        CREATE TABLE orders (
            client_order_id TEXT COLLATE "C" PRIMARY KEY,
            run_id          TEXT COLLATE "C" NOT NULL,
            signal_id       BIGINT           NOT NULL,
            client_id       INTEGER          NOT NULL,
            venue           SMALLINT         NOT NULL,
            instrument      BIGINT           NOT NULL,
            side            SMALLINT         NOT NULL,
            qty             DOUBLE PRECISION NOT NULL,
            price           DOUBLE PRECISION NOT NULL,
            ts_event        BIGINT           NOT NULL,
            ts_recv         BIGINT           NOT NULL,
            ts_signal       BIGINT           NOT NULL,
            ts_alloc        BIGINT           NOT NULL,
            ts_journal      BIGINT           NOT NULL
        );
        CREATE INDEX orders_by_run ON orders (run_id);
        CREATE TABLE executions (
            seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            client_order_id TEXT COLLATE "C" NOT NULL,
            client_id       INTEGER          NOT NULL,
            instrument      BIGINT           NOT NULL,
            side            SMALLINT         NOT NULL,
            state           SMALLINT         NOT NULL,
            rank_key        INTEGER          NOT NULL,
            reason          SMALLINT         NOT NULL,
            fill_qty        DOUBLE PRECISION NOT NULL,
            fill_price      DOUBLE PRECISION NOT NULL,
            fee             DOUBLE PRECISION NOT NULL,
            ts_sent         BIGINT           NOT NULL,
            ts_ack          BIGINT           NOT NULL
        );
        CREATE INDEX executions_by_order ON executions (client_order_id, rank_key);
        CREATE UNIQUE INDEX executions_one_terminal ON executions (client_order_id)
            WHERE state IN ({_TERMINAL});
        """,
        """
        CREATE TABLE retunes (
            seq                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id             TEXT COLLATE "C" NOT NULL,
            instrument         BIGINT           NOT NULL,
            symbol             TEXT COLLATE "C" NOT NULL,
            strategy           TEXT COLLATE "C" NOT NULL,
            ts_ns              BIGINT           NOT NULL,
            train_from_ns      BIGINT           NOT NULL,
            train_to_ns        BIGINT           NOT NULL,
            valid_from_ns      BIGINT           NOT NULL,
            valid_to_ns        BIGINT           NOT NULL,
            param_names        TEXT             NOT NULL,
            live_params        TEXT             NOT NULL,
            winner_params      TEXT             NOT NULL,
            live_score         DOUBLE PRECISION,
            winner_score       DOUBLE PRECISION,
            winner_train_score DOUBLE PRECISION,
            winner_trades      BIGINT           NOT NULL,
            sets_evaluated     BIGINT           NOT NULL,
            decision           TEXT             NOT NULL
                CHECK (decision IN ('swap', 'keep', 'failed')),
            reason             TEXT             NOT NULL
        );
        CREATE INDEX retunes_by_symbol ON retunes (symbol, ts_ns);
        CREATE INDEX retunes_by_run ON retunes (run_id, ts_ns);
        """,
        """
        CREATE TABLE credentials (
            client_id     INTEGER  NOT NULL,
            venue         SMALLINT NOT NULL,
            kind          TEXT     NOT NULL,
            key_id        TEXT     NOT NULL,
            account_id    TEXT     NOT NULL,
            nonce         BYTEA    NOT NULL,
            ciphertext    BYTEA    NOT NULL,
            master_key_id TEXT     NOT NULL,
            updated_ns    BIGINT   NOT NULL,
            PRIMARY KEY (client_id, venue)
        );
        CREATE INDEX credentials_by_master_key ON credentials (master_key_id);
        """,
        f"""
        CREATE TABLE halt_events (
            seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            scope       TEXT COLLATE "C" NOT NULL,
            action      TEXT             NOT NULL CHECK (action IN ('{HALT}', '{RESUME}')),
            reason      TEXT             NOT NULL,
            cancel_open BOOLEAN          NOT NULL,
            actor       TEXT             NOT NULL,
            ts_ns       BIGINT           NOT NULL
        );
        CREATE INDEX halt_events_by_scope ON halt_events (scope, seq);
        CREATE TABLE checkpoints (
            name    TEXT COLLATE "C" PRIMARY KEY,
            ts_ns   BIGINT           NOT NULL,
            payload BYTEA            NOT NULL
        );
        """,
        """
        -- What the dashboard and the CLI ask per client and per instrument.
        CREATE INDEX orders_by_client ON orders (client_id, ts_journal);
        CREATE INDEX orders_by_instrument ON orders (instrument, ts_journal);
        CREATE INDEX executions_by_client ON executions (client_id, seq);
        CREATE INDEX executions_by_instrument ON executions (instrument, seq);
        """,
        # Step 7 also splits SQLite's single writer lock in two; PostgreSQL locks rows, not the
        # database, so the journal and the ledger already write side by side.
        """
        -- The orders lose the indexes step 6 gave them: an index on orders by client costs the
        -- journal 2.3x on a fan-out (every insert lands in another page), and the journal is
        -- on the order path. Per client and per instrument, orders are found through their
        -- executions, which the ledger records off it.
        DROP INDEX IF EXISTS orders_by_client;
        DROP INDEX IF EXISTS orders_by_instrument
        """,
        # Step 8 is SQLite's alone: there a journal row per order costs more than every index
        # (one statement bound per row). PostgreSQL's binary COPY binds none, and its journal
        # stays rows (about 86 ms for a 30,000-order fan-out, against 110 ms for SQLite's rows
        # and 10-15 ms for its chunks).
        "",
    )
)

LATEST_VERSION = MIGRATIONS[-1][0]
