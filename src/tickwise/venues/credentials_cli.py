"""`tickwise credentials import | ls`: client keys into the encrypted store, and what is there.

    tickwise credentials import keys.csv [--store URL]     (or "-" for standard input)
    tickwise credentials ls [--venue binance] [--store URL]

The CSV has a header row: `client_id, venue, kind, key_id, account_id`, then one column per
secret part of the kinds it holds (`secret`; E*Trade: `consumer_secret, oauth_token,
oauth_token_secret`). Rows are checked first (a bad row stops the import with its line number
and the reason, nothing written), then sealed with the master key from `TICKWISE_MASTER_KEY`
and written in one transaction. Secrets are never printed; `ls` shows public fields only.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import Counter
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from tickwise.model.instruments import Venue
from tickwise.venues.credentials import (
    Credential,
    CredentialError,
    CredentialKind,
    CredentialVault,
    MasterKey,
    Secret,
)

_PUBLIC = ("client_id", "venue", "kind", "key_id", "account_id")


def add_credentials_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("credentials", help="client venue keys in the encrypted store")
    csub = p.add_subparsers(dest="credentials_command", required=True)
    imp = csub.add_parser("import", help="seal and store client keys from a CSV file")
    imp.add_argument("file", help='CSV file, or "-" for standard input')
    imp.add_argument("--store", default="sqlite:///var/tickwise.sqlite", help="store URL")
    ls = csub.add_parser("ls", help="count and list stored credentials (public fields only)")
    ls.add_argument("--venue", choices=[v.label for v in Venue], help="one venue only")
    ls.add_argument("--client", type=int, nargs="*", help="show these clients' public fields")
    ls.add_argument("--store", default="sqlite:///var/tickwise.sqlite", help="store URL")


def parse_credentials_csv(lines: Iterable[str]) -> list[Credential]:
    """Credentials from CSV text (see module doc); `CredentialError` names the bad line."""
    reader = csv.DictReader(lines)
    missing = [c for c in _PUBLIC if c not in (reader.fieldnames or [])]
    if missing:
        raise CredentialError(f"credentials CSV: header lacks column(s) {', '.join(missing)}")
    out: list[Credential] = []
    for row in reader:
        where = f"credentials CSV line {reader.line_num}"
        try:
            client = int(row["client_id"])
            venue = Venue.parse(row["venue"])
            kind = CredentialKind.parse(row["kind"])
        except (ValueError, KeyError, CredentialError) as exc:
            raise CredentialError(f"{where}: {_reason(exc)}") from None
        parts = {}
        for part in kind.secret_parts:
            value = (row.get(part) or "").strip()
            if not value:
                raise CredentialError(f"{where}: {kind.label} needs a value in column {part!r}")
            parts[part] = value
        try:
            out.append(
                Credential(
                    client_id=client,
                    venue=venue,
                    kind=kind,
                    key_id=(row["key_id"] or "").strip(),
                    account_id=(row["account_id"] or "").strip(),
                    secret=Secret(parts),
                )
            )
        except CredentialError as exc:
            raise CredentialError(f"{where}: {exc}") from None
    seen = Counter((c.client_id, c.venue) for c in out)
    doubled = [key for key, n in seen.items() if n > 1]
    if doubled:
        client, venue = doubled[0]
        raise CredentialError(
            f"credentials CSV: client {client} appears {seen[doubled[0]]} times at {venue.label}"
        )
    return out


def _reason(exc: BaseException) -> str:
    # Never echo a field's value: it could be a secret typed into the wrong column.
    if isinstance(exc, KeyError):
        return f"missing column {exc.args[0]!r}"
    if isinstance(exc, CredentialError):
        return str(exc)
    return "client_id must be a whole number and venue one of alpaca, binance, etrade"


def cmd_credentials(args: argparse.Namespace, console: Console) -> int:
    from tickwise.store import open_store

    store = open_store(args.store)
    try:
        if args.credentials_command == "import":
            text = sys.stdin.read() if args.file == "-" else _read(args.file)
            credentials = parse_credentials_csv(io.StringIO(text))
            vault = CredentialVault(MasterKey.from_env())
            written = store.save_credentials(vault.seal_many(credentials))
            by_venue = Counter(c.venue.label for c in credentials)
            console.print(
                f"sealed and stored {written:,} credentials "
                f"({', '.join(f'{v}: {n:,}' for v, n in sorted(by_venue.items()))}) "
                f"under master key {vault.current_key_id}",
                highlight=False,
            )
            return 0
        venues = [Venue.parse(args.venue)] if args.venue else list(Venue)
        table = Table(title="stored credentials (secrets are never shown)")
        for column in ("venue", "count", "client", "kind", "key id", "account id", "master key"):
            table.add_column(column)
        for venue in venues:
            count = store.credential_count(venue)
            shown = store.load_credentials(args.client, venue) if args.client else []
            if not shown:
                table.add_row(venue.label, f"{count:,}", "", "", "", "", "")
            for r in shown:
                table.add_row(
                    venue.label,
                    f"{count:,}",
                    str(r.client_id),
                    r.kind,
                    r.key_id,
                    r.account_id,
                    r.master_key_id,
                )
        console.print(table)
        return 0
    finally:
        store.close()


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except OSError as exc:
        raise CredentialError(f"{path}: cannot read ({exc.strerror})") from None
