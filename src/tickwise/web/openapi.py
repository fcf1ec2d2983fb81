"""The OpenAPI 3.1 document of the dashboard API (`GET /api/openapi.json`).

It is the API's contract: the pages and the CLI read these shapes, and the schema-driven API
test calls every operation with generated input and checks each answer against it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from tickwise import __version__

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_PARAMS = {"type": "object", "additionalProperties": _NUM}
SCOPE_PATTERN = "^(global|portfolio:[0-9]{1,9}|client:[0-9]{1,9})$"
MAX_REASON = 500
# A halt's reason must hold a character that is not blank. "Blank" is spelled out rather than
# `\S`: JavaScript's and Python's regular expressions disagree on what whitespace is (Python
# counts the separators U+001C-U+001F and U+0085, JavaScript U+FEFF), and the server must
# accept whatever a client validating this document sends. The set is the union of both.
_BLANK = "\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
REASON_PATTERN = f"[^{_BLANK}]"
_SCOPE = {"type": "string", "pattern": SCOPE_PATTERN}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    props = {**required, **(optional or {})}
    return {"type": "object", "required": sorted(required), "properties": props}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


_SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _STR}),
    "Halt": _obj(
        {
            "scope": _STR,
            "reason": _STR,
            "actor": _STR,
            "t": _NUM,
            "active": _BOOL,
            "action": {"enum": ["halt", "resume"]},
            "cancel_open": _BOOL,
        }
    ),
    "Status": _obj(
        {
            "run_id": _STR,
            "tier": _STR,
            "state": {"enum": ["starting", "running", "draining", "finished"]},
            "elapsed_s": _NUM,
            "duration_s": _NUM,
            "instruments": _INT,
            "clients": _INT,
            "version": _STR,
            "store": _STR,
            "halted": _BOOL,
            "halts": _array(_ref("Halt")),
        }
    ),
    "Totals": _obj(
        {k: _INT for k in ("ticks", "signals", "journaled", "orders", "fills", "rejects", "errors")}
    ),
    "Point": _obj(
        {
            "t": _NUM,
            "latency_ms": {
                "type": "object",
                "additionalProperties": _obj({"p50": _NUM, "p99": _NUM}),
            },
        },
        {
            f"{k}_per_s": _NUM
            for k in ("ticks", "signals", "journaled", "orders", "fills", "rejects", "errors")
        },
    ),
    "Throughput": _obj(
        {
            "points": _array(_ref("Point")),
            "totals": _ref("Totals"),
            "rejects_by_reason": {"type": "object", "additionalProperties": _INT},
        }
    ),
    "InstrumentRow": _obj(
        {
            "symbol": _STR,
            "index": _INT,
            "venue": _STR,
            "asset_class": _STR,
            "strategy": _STR,
            "params": _PARAMS,
            "params_age_s": _NUM_OR_NULL,
            "last_score": _NUM_OR_NULL,
        }
    ),
    "Instruments": _obj({"total": _INT, "instruments": _array(_ref("InstrumentRow"))}),
    "Retune": _obj(
        {
            "t": _NUM,
            "window_start": _NUM,
            "window_end": _NUM,
            "live_score": _NUM_OR_NULL,
            "winner_score": _NUM_OR_NULL,
            "decision": _STR,
            "params": _PARAMS,
        },
        {"symbol": _STR},
    ),
    "Instrument": _obj(
        {
            "symbol": _STR,
            "index": _INT,
            "venue": _STR,
            "asset_class": _STR,
            "strategy": _STR,
            "params": _PARAMS,
            "params_age_s": _NUM_OR_NULL,
            "prices": _array({"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}),
            "signals": _array(
                _obj({"t": _NUM, "price": _NUM, "side": {"enum": ["buy", "sell"]}, "orders": _INT})
            ),
            "fills": _array(
                _obj({"t": _NUM, "price": _NUM, "qty": _NUM, "side": {"enum": ["buy", "sell"]}})
            ),
            "retunes": _array(_ref("Retune")),
        }
    ),
    "ClientRow": _obj({"id": _INT, "venue": _STR, "equity": _NUM, "portfolios": _array(_INT)}),
    "Clients": _obj({"total": _INT, "clients": _array(_ref("ClientRow"))}),
    "Order": _obj(
        {
            "client_order_id": _STR,
            "symbol": _STR,
            "side": {"enum": ["buy", "sell"]},
            "qty": _NUM,
            "price": _NUM,
            "state": _STR,
            "filled_qty": _NUM,
            "avg_fill_price": _NUM,
            "t": _NUM,
        }
    ),
    "Fill": _obj(
        {
            "t": _NUM,
            "symbol": _STR,
            "side": {"enum": ["buy", "sell"]},
            "qty": _NUM,
            "price": _NUM,
            "fee": _NUM,
        }
    ),
    "Client": _obj(
        {
            "id": _INT,
            "venue": _STR,
            "equity": _NUM,
            "portfolios": _array(_INT),
            "halted": _BOOL,
            "cash": _NUM,
            "realised_pnl": _NUM,
            "unrealised_pnl": _NUM,
            "fees": _NUM,
            "positions": _array(
                _obj(
                    {
                        "symbol": _STR,
                        "qty": _NUM,
                        "avg_cost": _NUM,
                        "last_price": _NUM,
                        "value": _NUM,
                    }
                )
            ),
            "open_orders": _array(_ref("Order")),
            "orders": _array(_ref("Order")),
            "fills": _array(_ref("Fill")),
            "equity_curve": _array({"type": "array", "items": _NUM}),
        }
    ),
    "Venues": _obj(
        {
            "venues": _array(
                _obj(
                    {
                        "venue": _STR,
                        "lanes": _INT,
                        "sent": _INT,
                        "acked": _INT,
                        "rejected": _INT,
                        "in_flight": _INT,
                        "requests_per_s": _NUM,
                        "rate_limit_per_s": _NUM_OR_NULL,
                        "errors": {"type": "object", "additionalProperties": _INT},
                        "error_rate": _NUM,
                        "stream": {"enum": ["connected", "reconnecting", "none"]},
                        "reconnects": _INT,
                    }
                )
            )
        }
    ),
    "Cluster": _obj(
        {
            "nodes": _array(
                _obj(
                    {
                        "node_id": _STR,
                        "address": _STR,
                        "alive": _BOOL,
                        "cpus": _NUM,
                        "gpus": _NUM,
                        "memory_gb": _NUM,
                    }
                )
            ),
            "resources": {
                "type": "object",
                "additionalProperties": _obj({"total": _NUM, "available": _NUM}),
            },
            "actors": _array(_obj({"kind": _STR, "count": _INT, "alive": _INT, "restarts": _INT})),
        }
    ),
    "Tuning": _obj(
        {
            "summary": _obj(
                {"enabled": _BOOL, "runs": _INT, "swaps": _INT, "instruments_tuned": _INT},
                {
                    "median_period_s": _NUM_OR_NULL,
                    "p99_period_s": _NUM_OR_NULL,
                    "sets_evaluated_per_s": _NUM_OR_NULL,
                },
            ),
            "retunes": _array(_ref("Retune")),
        }
    ),
    "Halts": _obj(
        {
            "generation": _INT,
            "active": _array(_ref("Halt")),
            "history": _array(_ref("Halt")),
        }
    ),
    "HaltRequest": {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "scope": {**_SCOPE, "default": "global", "examples": ["global", "portfolio:3"]},
            "reason": {**_STR, "pattern": REASON_PATTERN, "maxLength": MAX_REASON},
            "cancel_open": {**_BOOL, "default": False},
        },
    },
}


def _query(name: str, schema: dict[str, Any], about: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": about}


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _answers(schema: str, *errors: int, status: int = 200) -> dict[str, Any]:
    out: dict[str, Any] = {
        str(status): {
            "description": "OK",
            "content": {"application/json": {"schema": _ref(schema)}},
        },
        "401": {
            "description": "no valid token",
            "content": {"application/json": {"schema": _ref("Error")}},
        },
    }
    for code in errors:
        out[str(code)] = {
            "description": {400: "bad input", 403: "missing CSRF header", 404: "not found"}[code],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return out


def _get(summary: str, schema: str, params: list[dict[str, Any]], *errors: int) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": schema[0].lower() + schema[1:],
            "parameters": params,
            "responses": _answers(schema, *errors),
        }
    }


_LIMIT = {"type": "integer", "minimum": 0, "maximum": 999_999_999}
_PAGE = [
    _query("limit", _LIMIT, "at most this many (capped at 500)"),
    _query("offset", _LIMIT, "skip this many"),
]


@cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once)."""
    paths: dict[str, Any] = {
        "/api/v1/status": _get("the run: state, size, halts", "Status", []),
        "/api/v1/throughput": _get(
            "rates and per-stage latency over time, totals, rejects by reason",
            "Throughput",
            [_query("since", _NUM, "only points after this time (epoch seconds)")],
            400,
        ),
        "/api/v1/instruments": _get(
            "instruments with their current parameters",
            "Instruments",
            [
                _query("q", {**_STR, "maxLength": 200}, "part of a symbol"),
                *_PAGE,
            ],
            400,
        ),
        "/api/v1/instruments/{symbol}": _get(
            "one instrument: prices, signals, fills, parameters, re-tunes",
            "Instrument",
            [_path("symbol", _STR)],
            404,
        ),
        "/api/v1/clients": _get(
            "search clients by id",
            "Clients",
            [
                _query("q", {**_STR, "maxLength": 200}, "the digits of a client id"),
                _query("venue", {"enum": ["", "alpaca", "binance", "etrade"]}, "only this venue"),
                *_PAGE,
            ],
            400,
        ),
        "/api/v1/clients/{id}": _get(
            "one client: positions, orders, fills, equity and PnL",
            "Client",
            [_path("id", {"type": "integer", "minimum": 0, "maximum": 999_999_999})],
            404,
        ),
        "/api/v1/venues": _get("each venue's flow, errors and streams", "Venues", []),
        "/api/v1/cluster": _get("Ray nodes, resources and actors", "Cluster", []),
        "/api/v1/tuning": _get(
            "the tuner's figures and the re-tuning audit trail",
            "Tuning",
            [
                _query("instrument", {**_STR, "maxLength": 200}, "one instrument's symbol"),
                _query("limit", _LIMIT, "at most this many (capped at 500)"),
            ],
            400,
            404,
        ),
        "/api/v1/halts": {
            **_get("the kill switch: active halts and their history", "Halts", []),
            "post": {
                "summary": "halt trading in a scope (the kill switch)",
                "operationId": "halt",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("HaltRequest")}},
                },
                "responses": {
                    **_answers("Halts", 400, 403),
                    "201": {
                        "description": "halted",
                        "content": {
                            "application/json": {
                                "schema": _obj({"halt": _ref("Halt"), "generation": _INT}),
                            }
                        },
                    },
                },
            },
            "delete": {
                "summary": "resume trading in a scope",
                "operationId": "resume",
                "parameters": [
                    {"name": "scope", "in": "query", "required": True, "schema": _SCOPE},
                    _query("reason", {**_STR, "maxLength": 200}, "why, for the audit trail"),
                ],
                "responses": {
                    "200": {
                        "description": "resumed",
                        "content": {
                            "application/json": {
                                "schema": _obj({"resumed": _INT, "generation": _INT})
                            }
                        },
                    },
                    "400": _answers("Error", 400)["400"],
                    "401": _answers("Error")["401"],
                    "403": _answers("Error", 403)["403"],
                },
            },
        },
    }
    del paths["/api/v1/halts"]["post"]["responses"]["200"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tickwise",
            "version": __version__,
            "description": "The live engine's state, for the dashboard and the CLI.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "tickwise_token"},
            },
        },
    }
