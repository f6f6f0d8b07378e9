"""Find notifiers by name through the `permit_worker.notifiers` entry-point group.

The entry points in pyproject.toml are the one list of providers: a new provider is a folder
under notifiers/ and one line there.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from fastapi import APIRouter

from notifiers.base import InboundSink, Notifier, NotifierConfigError

GROUP = "permit_worker.notifiers"


def available_notifiers() -> dict[str, str]:
    """Name -> "module:Class", as the installed package declares them."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def _load(name: str) -> Any:
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none: is the package installed (pip install -e .)?"
        raise NotifierConfigError(f"unknown notifier {name!r} (known: {known})")
    return found[name].load()


def get_notifier(name: str, env: Mapping[str, str] | None = None, **settings: Any) -> Notifier:
    """Build the notifier called `name`; misconfiguration raises NotifierConfigError now.

    An adapter with a `from_env(env)` classmethod reads its own settings from `env` (the
    runtime passes the environment its settings were read from; credentials never come from
    code); keyword settings are for adapters without one, and tests.
    """
    factory = _load(name)
    if hasattr(factory, "from_env") and not settings:
        notifier = factory.from_env({} if env is None else env)
    else:
        notifier = factory(**settings)
    if not isinstance(notifier, Notifier):
        raise NotifierConfigError(f"{name!r} does not implement the Notifier interface")
    return notifier


def address_problem(name: str, address: str) -> str | None:
    """Why `address` is not one the notifier `name` can send to (None: it is), for settings that
    store an address ahead of sending (a WeCom group robot's URL); a notifier offers it as
    `address_problem(address)`."""
    check = getattr(_load(name), "address_problem", None)
    return check(address) if check is not None else None


def webhook_routers(sink: InboundSink, env: Mapping[str, str], public_url: str | None) -> list[APIRouter]:
    """The HTTP routes providers call back on (receipts, replies), one router per provider that
    has any: a notifier class offers them as `webhook_router(sink, env, public_url)`."""
    routers = []
    for name in sorted(available_notifiers()):
        factory = _load(name)
        make = getattr(factory, "webhook_router", None)
        if make is not None:
            routers.append(make(sink, env, public_url))
    return routers
