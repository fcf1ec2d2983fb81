"""`tickwise credentials import | ls`: keys into the encrypted store, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwise.cli import main
from tickwise.model.instruments import Venue
from tickwise.store import open_store
from tickwise.venues.credentials import (
    MASTER_KEY_ENV,
    CredentialError,
    CredentialVault,
    MasterKey,
)
from tickwise.venues.credentials_cli import parse_credentials_csv

CSV = (
    "client_id,venue,kind,key_id,account_id,secret,consumer_secret,oauth_token,oauth_token_secret\n"
    "7,binance,binance_hmac,KEY7,,s3cr3t-seven,,,\n"
    "8,etrade,etrade_oauth,CK8,ACCT8,,cs8,tok8,toksec8\n"
)


def test_import_seals_rows_that_open_with_the_master_key_and_never_prints_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = MasterKey.generate()
    monkeypatch.setenv(MASTER_KEY_ENV, key.to_base64())
    source = tmp_path / "keys.csv"
    source.write_text(CSV)
    url = f"sqlite:///{tmp_path / 'tw.sqlite'}"
    assert main(["credentials", "import", str(source), "--store", url]) == 0
    assert main(["credentials", "ls", "--store", url, "--client", "7", "8"]) == 0
    printed = capsys.readouterr().out
    assert "KEY7" in printed and "ACCT8" in printed
    for secret in ("s3cr3t-seven", "cs8", "tok8", "toksec8"):
        assert secret not in printed
    store = open_store(url)
    try:
        rows = store.load_credentials([7], Venue.BINANCE)
        assert b"s3cr3t-seven" not in rows[0].ciphertext  # encrypted at rest
        opened = CredentialVault(key).open(rows[0])
    finally:
        store.close()
    assert opened.secret.reveal("secret") == "s3cr3t-seven"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("client_id,venue,kind,key_id\n", "lacks column(s) account_id"),
        (CSV.replace("7,binance", "x,binance"), "line 2"),
        (CSV.replace("binance_hmac", "binance_rsa"), "unknown credential kind"),
        (CSV.replace("s3cr3t-seven", ""), "needs a value in column 'secret'"),
        (CSV + "7,binance,binance_hmac,KEY7b,,other,,,\n", "appears 2 times"),
    ],
)
def test_a_bad_file_is_refused_with_its_line_and_without_echoing_values(
    text: str, words: str
) -> None:
    with pytest.raises(CredentialError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_credentials_csv(text.splitlines(keepends=True))
    assert "s3cr3t" not in str(err.value)
