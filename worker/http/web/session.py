"""Sessions of the HR web pages: a signed cookie, the CSRF token it carries, and the signing key.

The cookie holds no personal data, only ids: the team, a random session id (uploads awaiting
confirmation are bound to it), the CSRF token, and a short tag of the team's token hash keyed
with the session secret, so `teams rotate-token` ends every web session of that team at once and
a copy of the database alone cannot make a valid cookie. It is signed (itsdangerous,
as starlette's SessionMiddleware does) and expires after MAX_AGE, whatever the browser keeps.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.ops.runtime import Runtime
from worker.store.db import unit_of_work
from worker.store.models import ApiToken, AppMeta, User

COOKIE = "pw_session"
LANG_COOKIE = "pw_lang"
MAX_AGE = 12 * 3600  # a working day, then sign in again
_META_KEY = "web_session_secret"
_REVOKED = "web_revoked:"  # + session id; value: when the cookie would have expired anyway
_TAG_LEN = 16


class CsrfError(Exception):
    """A form post without the session's CSRF token, or from another site."""


class Forbidden(Exception):
    """The signed-in person's role does not allow this: a 403 page, nothing changed."""


class SignInRequired(Exception):
    """No valid session: the page redirects to sign-in."""


def session_secret(session: Session, configured: str | None) -> str:
    """PERMIT_SESSION_SECRET, else a random key generated once per database and kept there,
    so every replica and every restart signs and checks cookies with the same key."""
    if configured:
        # A key generated earlier is no longer used: not left beside the data it would sign for.
        session.execute(delete(AppMeta).where(AppMeta.key == _META_KEY))
        return configured
    stored = session.scalar(select(AppMeta.value).where(AppMeta.key == _META_KEY))
    if stored:
        return stored
    generated = secrets.token_hex(32)
    try:
        with session.begin_nested():
            session.add(AppMeta(key=_META_KEY, value=generated))
    except IntegrityError:  # another process generated it first: use theirs
        return session.scalar(select(AppMeta.value).where(AppMeta.key == _META_KEY)) or generated
    return generated


def stored_secret(session: Session) -> str | None:
    """The generated session secret kept in the database, if any (`permit-worker keys export`)."""
    return session.scalar(select(AppMeta.value).where(AppMeta.key == _META_KEY))


def revoke(session: Session, sid: str) -> None:
    """Sign-out on the server too: a copy of the cookie is worthless from now on. The entry is
    kept only until the cookie would have expired anyway, so the list stays small."""
    now = int(time.time())
    # Fixed-width epoch seconds compare correctly as text.
    session.execute(delete(AppMeta).where(AppMeta.key.startswith(_REVOKED), AppMeta.value < f"{now:010d}"))
    if session.get(AppMeta, _REVOKED + sid) is None:
        session.add(AppMeta(key=_REVOKED + sid, value=f"{now + MAX_AGE:010d}"))


def is_revoked(session: Session, sid: str) -> bool:
    return session.get(AppMeta, _REVOKED + sid) is not None


def token_tag(token: ApiToken, secret: str) -> str:
    """What binds a token sign-in to that token as it is now (rotated or revoked: the session
    ends): keyed with the session secret, so it cannot be computed from the database alone (the
    token hash is in it; the secret, in production, is not)."""
    digest = hmac.new(secret.encode("utf-8"), f"tag:{token.token_hash}".encode(), "sha256")
    return digest.hexdigest()[:_TAG_LEN]


@dataclass
class WebSession:
    sid: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    team_id: int | None = None
    tag: str | None = None  # a token sign-in: binds the session to the token (token_tag)
    token_id: int | None = None  # signed in with an API token (read: viewer, write: editor) ...
    user_id: int | None = None  # ... or as a named user (user_sessions holds the session)
    # One-shot messages shown on the next page (after a redirect): (kind, text key or text).
    flash: list[list[str]] = field(default_factory=list)
    dirty: bool = False

    def signed_in(self) -> bool:
        return self.team_id is not None

    def add_flash(self, kind: str, text: str) -> None:
        self.flash.append([kind, text])
        self.dirty = True

    def pop_flash(self) -> list[list[str]]:
        messages, self.flash = self.flash, []
        self.dirty = self.dirty or bool(messages)
        return messages


class SessionCodec:
    """Reads and writes the session cookie; the key is fetched lazily, on the first request,
    so creating the app needs no database."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._serializer: URLSafeTimedSerializer | None = None
        self._secret = ""
        self._lock = threading.Lock()

    def _signer(self) -> URLSafeTimedSerializer:
        with self._lock:
            if self._serializer is None:
                with unit_of_work(self.runtime.factory) as session:
                    self._secret = session_secret(session, self.runtime.settings.session_secret)
                self._serializer = URLSafeTimedSerializer(self._secret, salt="permit-worker.web.session")
            return self._serializer

    def tag(self, token: ApiToken) -> str:
        self._signer()
        return token_tag(token, self._secret)

    def load(self, request: Request) -> WebSession:
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data = self._signer().loads(raw, max_age=MAX_AGE)
                return WebSession(sid=str(data["s"]), csrf=str(data["c"]), team_id=data.get("t"),
                                  tag=data.get("g"), token_id=data.get("k"), user_id=data.get("u"),
                                  flash=list(data.get("f", [])))
            except (BadSignature, KeyError, TypeError, ValueError):
                pass  # tampered, expired or from an older key: start afresh
        return WebSession(dirty=True)

    def save(self, request: Request, response: Response, ws: WebSession) -> None:
        if not ws.dirty:
            return
        value = self._signer().dumps({"s": ws.sid, "c": ws.csrf, "t": ws.team_id, "g": ws.tag, "k": ws.token_id,
                                      "u": ws.user_id, "f": ws.flash})
        response.set_cookie(COOKIE, value, max_age=MAX_AGE, path="/web", httponly=True, samesite="lax",
                            secure=self.secure(request))

    def secure(self, request: Request) -> bool:
        """Secure when the browser talks HTTPS: directly, or to a TLS proxy serving
        PERMIT_PUBLIC_URL (uvicorn may not trust that proxy's X-Forwarded-Proto)."""
        public = urlsplit(self.runtime.settings.public_url or "")
        host = request.headers.get("x-forwarded-host") or request.url.netloc
        return request.url.scheme == "https" or (public.scheme == "https" and public.netloc == host)

    def sign_in(self, token: ApiToken) -> WebSession:
        # A new session id and CSRF token at sign-in: a session planted before it is worthless.
        return WebSession(team_id=token.team_id, tag=self.tag(token), token_id=token.id, dirty=True)

    @staticmethod
    def sign_in_user(user: User) -> WebSession:
        return WebSession(team_id=user.team_id, user_id=user.id, dirty=True)

    def clear(self, request: Request, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/web", httponly=True, samesite="lax", secure=self.secure(request))


def check_csrf(request: Request, ws: WebSession, submitted: str | None, public_url: str | None = None) -> None:
    """The form's token must be this session's; a cross-site Origin is refused outright.

    SameSite=Lax already keeps the cookie off cross-site posts in current browsers; the token
    covers older ones and same-site attackers (another app on a sibling subdomain). Behind a
    proxy that rewrites Host, the page's own origin is PERMIT_PUBLIC_URL or X-Forwarded-Host
    (a cross-site form cannot set headers, so trusting it here gives an attacker nothing).
    """
    origin = request.headers.get("origin")
    if origin and origin != "null":
        ours = {request.url.netloc, request.headers.get("x-forwarded-host", ""),
                urlsplit(public_url).netloc if public_url else ""}
        if urlsplit(origin).netloc not in ours - {""}:
            raise CsrfError("cross-site form post")
    if not submitted or not hmac.compare_digest(submitted.encode(), ws.csrf.encode()):
        raise CsrfError("missing or wrong CSRF token")
