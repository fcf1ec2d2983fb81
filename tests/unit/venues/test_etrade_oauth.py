"""E*Trade OAuth 1.0a: RFC 5849 signatures, the token dance, and when a token must be renewed."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwise.venues import etrade
from tickwise.venues.etrade.oauth import (
    US_EASTERN,
    ConsumerCredentials,
    OAuthEndpoints,
    OAuthResponseError,
    TokenCredentials,
    TokenResponse,
    TokenState,
    access_token_request,
    authorization_header,
    authorize_url,
    hmac_sha1_signature,
    normalized_url,
    parse_token_response,
    percent_encode,
    renew_request,
    request_token_expired,
    request_token_request,
    signature_base_string,
)

# RFC 5849 section 1.2 (and OAuth Core 1.0 appendix A): the photos.example.net example.
PHOTOS_URL = "http://photos.example.net/photos?file=vacation.jpg&size=original"
PHOTOS_CONSUMER = ConsumerCredentials("dpf43f3p2l4k3l03", "kd94hf93k423kf44")
PHOTOS_TOKEN = TokenCredentials("nnch734d00sl2jdk", "pfkkdhi9sl3r4s00")
UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def header_params(header: str) -> dict[str, str]:
    """Parse an `OAuth k="v", ...` header the way a server would."""
    assert header.startswith("OAuth ")
    fields = {}
    for item in header[len("OAuth ") :].split(", "):
        name, _, value = item.partition("=")
        fields[unquote(name)] = unquote(value.strip('"'))
    return fields


def verifies(method: str, url: str, header: str, consumer_secret: str, token_secret: str) -> bool:
    params = header_params(header)
    claimed = params.pop("oauth_signature")
    base = signature_base_string(method, url, params.items())
    return hmac_sha1_signature(base, consumer_secret, token_secret) == claimed


def test_rfc5849_section_1_2_example_gives_the_documented_base_string_and_signature() -> None:
    oauth = {
        "oauth_consumer_key": "dpf43f3p2l4k3l03",
        "oauth_token": "nnch734d00sl2jdk",
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": "137131202",
        "oauth_nonce": "chapoH",
    }

    base = signature_base_string("GET", PHOTOS_URL, oauth.items())

    assert base == (
        "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26"
        "oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26"
        "oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26"
        "oauth_token%3Dnnch734d00sl2jdk%26size%3Doriginal"
    )
    signature = hmac_sha1_signature(base, PHOTOS_CONSUMER.secret, PHOTOS_TOKEN.secret)
    assert signature == "MdpQcU8iPSUjWoN/UDMsK2sui9I="


def test_rfc5849_section_3_4_1_1_base_string_with_query_body_and_repeated_names() -> None:
    url = "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b"
    body = parse_qsl("c2&a3=2+q", keep_blank_values=True)
    oauth = [
        ("realm", "Example"),
        ("oauth_consumer_key", "9djdj82h48djs9d2"),
        ("oauth_token", "kkk9d7dh3k39sjv7"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131201"),
        ("oauth_nonce", "7d8f3e4a"),
        ("oauth_signature", "bYT5CMsGcbgUdFHObYMEfcx6bsw="),
    ]

    base = signature_base_string("post", url, [*oauth, *body])

    assert base == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q"
        "%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_"
        "key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m"
        "ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk"
        "9d7dh3k39sjv7"
    )


def test_header_builder_reproduces_the_oauth_core_appendix_a_signature() -> None:
    header = authorization_header(
        "GET",
        PHOTOS_URL,
        PHOTOS_CONSUMER,
        PHOTOS_TOKEN,
        nonce="kllo9940pd9333jh",
        timestamp=1191242096,
        realm="http://photos.example.net/",
    )

    assert header.startswith('OAuth realm="http://photos.example.net/", ')
    params = header_params(header)
    assert params["oauth_signature"] == "tR3+Ty81lMeYAr/Fid0kMTYa/WM="
    assert 'oauth_signature="tR3%2BTy81lMeYAr%2FFid0kMTYa%2FWM%3D"' in header
    assert params["oauth_version"] == "1.0"
    assert "file" not in params  # query parameters are signed, not sent in the header


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM:80/r%20v/X?id=123#frag", "http://example.com/r%20v/X"),
        ("https://api.etrade.com:443/v1/accounts/list", "https://api.etrade.com/v1/accounts/list"),
        ("http://127.0.0.1:8080/oauth/request_token", "http://127.0.0.1:8080/oauth/request_token"),
        ("https://www.example.net:8080/?q=1", "https://www.example.net:8080/"),
        ("https://example.com", "https://example.com/"),
        (
            "http://[::1]:8080/oauth/renew_access_token",
            "http://[::1]:8080/oauth/renew_access_token",
        ),
    ],
)
def test_base_string_url_drops_default_port_query_and_fragment(url: str, expected: str) -> None:
    assert normalized_url(url) == expected


def test_a_url_without_scheme_or_host_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme and a host"):
        normalized_url("/v1/accounts/list")


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("abcXYZ019-._~", "abcXYZ019-._~"),
        (" ", "%20"),
        ("+", "%2B"),
        ("=&%/", "%3D%26%25%2F"),
        ("é", "%C3%A9"),
        ("*", "%2A"),
    ],
)
def test_percent_encoding_keeps_only_the_unreserved_set(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


@given(st.text())
def test_percent_encoding_round_trips_and_emits_only_unreserved_or_escapes(value: str) -> None:
    encoded = percent_encode(value)

    assert unquote(encoded) == value
    plain = encoded.replace("%", "")
    assert set(plain) <= UNRESERVED
    for i, char in enumerate(encoded):
        if char == "%":
            assert encoded[i + 1 : i + 3] == encoded[i + 1 : i + 3].upper()


_names = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8)
_pairs = st.lists(st.tuples(_names, st.text(max_size=8)), min_size=1, max_size=8)


@given(_pairs, st.randoms(use_true_random=False))
def test_base_string_does_not_depend_on_parameter_order(
    pairs: list[tuple[str, str]], rnd: random.Random
) -> None:
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    url = "https://api.etrade.com/v1/accounts/list"

    assert signature_base_string("GET", url, pairs) == signature_base_string("GET", url, shuffled)


def test_request_token_request_is_signed_with_an_empty_token_secret_and_oob_callback() -> None:
    endpoints = OAuthEndpoints()
    consumer = ConsumerCredentials("ckey", "csecret")

    request = request_token_request(endpoints, consumer, nonce="n1", timestamp=1_700_000_000)

    assert request.url == "https://api.etrade.com/oauth/request_token"
    params = header_params(request.authorization)
    assert params["oauth_callback"] == "oob"
    assert "oauth_token" not in params
    assert params["oauth_timestamp"] == "1700000000"
    assert verifies("GET", request.url, request.authorization, "csecret", "")
    assert not verifies("GET", request.url, request.authorization, "other", "")


def test_access_token_request_carries_verifier_and_request_token_signed_with_its_secret() -> None:
    endpoints = OAuthEndpoints(oauth_base="http://127.0.0.1:9000")
    consumer = ConsumerCredentials("ckey", "csecret")
    request_token = TokenCredentials("rtok", "rsecret")

    request = access_token_request(endpoints, consumer, request_token, " 12AB3 ", nonce="n2")

    assert request.url == "http://127.0.0.1:9000/oauth/access_token"
    params = header_params(request.authorization)
    assert params["oauth_verifier"] == "12AB3"
    assert params["oauth_token"] == "rtok"
    assert verifies("GET", request.url, request.authorization, "csecret", "rsecret")
    assert "rsecret" not in request.authorization and "csecret" not in request.authorization


def test_an_empty_verifier_is_refused() -> None:
    with pytest.raises(ValueError, match="verifier"):
        access_token_request(
            OAuthEndpoints(), ConsumerCredentials("k", "s"), TokenCredentials("t", "u"), "  "
        )


def test_renew_is_signed_with_the_access_token() -> None:
    request = renew_request(
        OAuthEndpoints(),
        ConsumerCredentials("ckey", "csecret"),
        TokenCredentials("atok", "asecret"),
        nonce="n3",
        timestamp=1,
    )

    assert request.url.endswith("/oauth/renew_access_token")
    assert verifies("GET", request.url, request.authorization, "csecret", "asecret")


def test_two_headers_get_different_nonces_when_none_is_given() -> None:
    consumer = ConsumerCredentials("ckey", "csecret")
    url = "https://api.etrade.com/v1/accounts/list"

    first = header_params(authorization_header("GET", url, consumer, timestamp=5))
    second = header_params(authorization_header("GET", url, consumer, timestamp=5))

    assert first["oauth_nonce"] != second["oauth_nonce"]


def test_form_body_parameters_are_signed() -> None:
    consumer, url = ConsumerCredentials("ckey", "csecret"), "https://api.etrade.com/x"
    with_body = authorization_header(
        "POST", url, consumer, body_params=[("a", "1")], nonce="n", timestamp=1
    )
    without = authorization_header("POST", url, consumer, nonce="n", timestamp=1)

    assert header_params(with_body)["oauth_signature"] != header_params(without)["oauth_signature"]


def test_authorize_url_names_consumer_key_and_request_token() -> None:
    url = authorize_url(OAuthEndpoints(), "my key", "tok/en")

    assert url == "https://us.etrade.com/e/t/etws/authorize?key=my+key&token=tok%2Fen"


def test_token_response_is_parsed_from_form_encoding() -> None:
    parsed = parse_token_response(
        b"oauth_token=abc%2B1&oauth_token_secret=s3cr3t&oauth_callback_confirmed=true"
    )

    assert parsed == TokenResponse(TokenCredentials("abc+1", "s3cr3t"), callback_confirmed=True)


def test_a_token_response_without_secret_is_a_clear_error_that_does_not_echo_values() -> None:
    with pytest.raises(OAuthResponseError, match="oauth_token_secret") as caught:
        parse_token_response("oauth_token=visible-token-value")

    assert "visible-token-value" not in str(caught.value)


def test_secrets_never_show_in_repr_or_str() -> None:
    consumer = ConsumerCredentials("ckey", "consumer-secret-value")
    token = TokenCredentials("token-value", "token-secret-value")
    now = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)
    shown = [consumer, token, TokenState.issued(token, now), TokenResponse(token)]

    for thing in shown:
        for text in (repr(thing), str(thing), f"{thing}"):
            assert "consumer-secret-value" not in text
            assert "token-secret-value" not in text
            assert "token-value" not in text
    assert "ckey" in repr(consumer)


@pytest.mark.parametrize("credentials", [ConsumerCredentials("k", "s"), TokenCredentials("t", "s")])
def test_credentials_refuse_to_be_pickled_but_compare_by_value(credentials: object) -> None:
    with pytest.raises(TypeError, match="holds a secret"):
        pickle.dumps(credentials)
    assert TokenCredentials("t", "s") != TokenCredentials("t", "other")


def et(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=US_EASTERN)


TOKEN = TokenCredentials("atok", "asecret")


def test_token_expires_at_the_next_midnight_us_eastern() -> None:
    state = TokenState.issued(TOKEN, et(2026, 6, 1, 9, 30))

    assert state.expires_at == et(2026, 6, 2, 0, 0)
    assert not state.expired(et(2026, 6, 1, 23, 59))
    assert state.expired(et(2026, 6, 2, 0, 0))
    assert state.expired(datetime(2026, 6, 2, 4, 0, tzinfo=UTC))  # 00:00 EDT
    assert not state.expired(datetime(2026, 6, 2, 3, 59, tzinfo=UTC))


def test_expiry_follows_eastern_wall_clock_across_a_dst_change() -> None:
    # 2026-03-08: clocks go forward at 02:00 ET; midnight after issue on the 7th is still 05:00 UTC
    # (EST), and the midnight after the 8th is 04:00 UTC (EDT).
    assert TokenState.issued(TOKEN, et(2026, 3, 7, 20)).expires_at.astimezone(UTC) == datetime(
        2026, 3, 8, 5, 0, tzinfo=UTC
    )
    assert TokenState.issued(TOKEN, et(2026, 3, 8, 20)).expires_at.astimezone(UTC) == datetime(
        2026, 3, 9, 4, 0, tzinfo=UTC
    )


def test_token_goes_inactive_after_two_idle_hours_and_a_call_resets_the_clock() -> None:
    state = TokenState.issued(TOKEN, et(2026, 6, 1, 9, 0))

    assert not state.needs_renew(et(2026, 6, 1, 10, 59))
    assert state.needs_renew(et(2026, 6, 1, 11, 0)) and state.inactive(et(2026, 6, 1, 11, 0))

    used = state.used(et(2026, 6, 1, 10, 30))
    assert not used.needs_renew(et(2026, 6, 1, 12, 0))
    assert used.needs_renew(et(2026, 6, 1, 12, 30))


def test_renew_margin_asks_for_renewal_before_the_venue_turns_the_token_off() -> None:
    state = TokenState.issued(TOKEN, et(2026, 6, 1, 9, 0), renew_margin=timedelta(minutes=10))

    assert state.needs_renew(et(2026, 6, 1, 10, 50))
    assert not state.inactive(et(2026, 6, 1, 10, 50))


def test_an_expired_token_needs_a_login_not_a_renewal() -> None:
    state = TokenState.issued(TOKEN, et(2026, 6, 1, 21, 0))
    after_midnight = et(2026, 6, 2, 0, 30)

    assert state.expired(after_midnight)
    assert not state.needs_renew(after_midnight)
    with pytest.raises(ValueError, match="log in again"):
        state.renewed(after_midnight)


def test_renewal_keeps_the_midnight_expiry() -> None:
    state = TokenState.issued(TOKEN, et(2026, 6, 1, 9, 0))

    renewed = state.renewed(et(2026, 6, 1, 12, 0))

    assert renewed.expires_at == state.expires_at
    assert not renewed.needs_renew(et(2026, 6, 1, 13, 0))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TokenState.issued(TOKEN, datetime(2026, 6, 1, 9, 0))
    state = TokenState.issued(TOKEN, et(2026, 6, 1, 9, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        state.expired(datetime(2026, 6, 1, 10, 0))


def test_a_request_token_lives_five_minutes() -> None:
    issued = et(2026, 6, 1, 9, 0)

    assert not request_token_expired(issued, et(2026, 6, 1, 9, 4))
    assert request_token_expired(issued, et(2026, 6, 1, 9, 5))


def test_the_package_exports_what_it_names() -> None:
    for name in etrade.__all__:
        assert getattr(etrade, name) is not None
