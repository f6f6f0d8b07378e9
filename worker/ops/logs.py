"""Logging for permit-worker: structlog everywhere, stderr only, PII masked.

The daemon handles residents' phones, e-mails and ID-card numbers, so every log
line -- ours, third-party stdlib loggers', and rendered tracebacks -- passes
through `mask_pii` immediately before rendering. Nothing else may come after it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from worker.store.privacy import mask_text

__all__ = ["configure_logging", "get_logger", "mask_pii", "mask_text"]

# Keys whose values are personal data whatever they look like. Exact names only:
# 'external_id', 'team', 'stage' etc. are operational and must stay readable.
_NAME_KEYS = frozenset({"name", "holder_name"})
_SENSITIVE_KEYS = frozenset(
    {"phone", "to", "recipient", "email", "address", "id_number", "id_card"}
) | _NAME_KEYS

_MARKER = "_permit_worker_handler"  # tags the root handler(s) we own


def _mask_sensitive(key: str, value: Any) -> Any:
    """Mask a value stored under a sensitive key, even if it has no PII shape."""
    if value is None:
        return None  # "absent" is useful to know and leaks nothing
    if isinstance(value, Mapping | list | tuple | set):
        return _mask_value(value, force_key=key)
    text = str(value)  # e.g. a phone stored as int must not slip through
    masked = mask_text(text)
    if masked != text:
        return masked
    if key in _NAME_KEYS:
        return text[:1] + "*" * (len(text) - 1) if len(text) > 1 else "*"
    return "***"  # address, or a phone/ID/recipient in an unrecognised shape


def _mask_value(value: Any, force_key: str | None = None) -> Any:
    """Recursively mask containers; `force_key` applies key rules to all leaves."""
    if isinstance(value, Mapping):
        return {
            (mask_text(k) if isinstance(k, str) else k): _mask_item(str(k), v, force_key)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set):
        items = [_mask_value(v, force_key) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if force_key is not None:
        return _mask_sensitive(force_key, value)
    if isinstance(value, str):
        return mask_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value  # counts, ids, durations: never personal on their own
    # Renderers would repr() arbitrary objects *after* us, bypassing masking.
    return mask_text(str(value))


def _mask_item(key: str, value: Any, force_key: str | None) -> Any:
    if force_key is None and key.lower() in _SENSITIVE_KEYS:
        force_key = key.lower()
    return _mask_value(value, force_key)


def mask_pii(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask PII in all values; must run last before rendering."""
    for key in list(event_dict):
        event_dict[key] = _mask_item(key, event_dict[key], None)
    return event_dict


def _is_tty(stream: TextIO) -> bool:
    isatty: Callable[[], bool] | None = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and stdlib logging; safe to call more than once."""
    # Resolve stderr now, not at import, so tests/daemonisation can swap it.
    # stdout is never used: it carries command output that may be piped.
    out = stream if stream is not None else sys.stderr
    levelno = logging.getLevelNamesMapping().get(level.upper())
    if levelno is None:
        raise ValueError(f"unknown log level: {level!r}")
    if fmt == "auto":
        fmt = "console" if _is_tty(out) else "json"
    if fmt not in ("json", "console"):
        raise ValueError(f"unknown log format: {fmt!r}")

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp")
    # Shared by structlog events and foreign (stdlib) records so both look alike.
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=_is_tty(out))
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Plain-text tracebacks in both formats (not Rich's pretty ones) so
            # mask_pii can scrub PII from exception messages and locals.
            structlog.processors.format_exc_info,
            mask_pii,  # LAST before rendering: nothing may add unmasked data
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _MARKER, True)

    root = logging.getLogger()
    # Idempotency: drop only handlers we installed earlier, so a second call
    # doesn't double every line yet leaves e.g. pytest's capture handlers be.
    for old in [h for h in root.handlers if getattr(h, _MARKER, False)]:
        root.removeHandler(old)
        old.close()  # StreamHandler.close() flushes but never closes the stream
    root.addHandler(handler)
    root.setLevel(levelno)

    # Third-party loggers propagate to root so they share format and masking;
    # the chatty ones are capped so they don't drown reminder events.
    for name in ("apscheduler", "sqlalchemy", "alembic"):
        logging.getLogger(name).propagate = True
    logging.getLogger("apscheduler").setLevel(logging.NOTSET if levelno <= logging.DEBUG else logging.WARNING)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # Alembic narrates every schema check at INFO; `db upgrade` reports its own result.
    logging.getLogger("alembic").setLevel(logging.NOTSET if levelno <= logging.DEBUG else logging.WARNING)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # cheap early drop of disabled levels
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """Return a structlog logger backed by the stdlib logger `name`."""
    return structlog.stdlib.get_logger(name)
