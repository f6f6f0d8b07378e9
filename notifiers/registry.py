"""Find notifiers by name through the `permit_worker.notifiers` entry-point group."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from notifiers.base import Notifier, NotifierConfigError

GROUP = "permit_worker.notifiers"

# Used when the package runs from a source tree without being installed (no entry points).
_BUILTIN = {
    "console": "notifiers.console:ConsoleNotifier",
    "twilio": "notifiers.twilio_sms:TwilioSmsNotifier",
    "smtp": "notifiers.smtp_email:SmtpEmailNotifier",
}


def available_notifiers() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    return {**_BUILTIN, **found}


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)


def get_notifier(name: str, env: Mapping[str, str] | None = None, **settings: Any) -> Notifier:
    """Build the notifier called `name`; misconfiguration raises NotifierConfigError now.

    An adapter with a `from_env(env)` classmethod reads its own settings (credentials come from
    the environment, never from code); keyword settings are for adapters without one, and tests.
    """
    targets = available_notifiers()
    if name not in targets:
        known = ", ".join(sorted(targets))
        raise NotifierConfigError(f"unknown notifier {name!r} (known: {known})")
    factory = _load(targets[name])
    if hasattr(factory, "from_env") and not settings:
        notifier = factory.from_env(os.environ if env is None else env)
    else:
        notifier = factory(**settings)
    if not isinstance(notifier, Notifier):
        raise NotifierConfigError(f"{name!r} does not implement the Notifier interface")
    return notifier
