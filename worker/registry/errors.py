"""What a use case refuses: input a person can fix (BadInput), or a thing that is not there."""

from __future__ import annotations


class BadInput(ValueError):
    """Input a user can fix: the CLI prints it as one line and exits 2. `code` and `params`, when
    given, let the web say the same in the page's language (worker/http/web/i18n.py, err.<code>)."""

    def __init__(self, message: str, code: str | None = None, **params: object) -> None:
        super().__init__(message)
        self.code, self.params = code, params


class NotFound(BadInput):
    pass
