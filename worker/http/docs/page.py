"""`GET /docs`: the API documentation as one server-rendered page, from the app's own OpenAPI
document. No JavaScript and nothing from a CDN (Swagger UI would need both, and the pages'
Content-Security-Policy forbids them); `/openapi.json` stays for tools."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

_METHODS = ("get", "post", "put", "patch", "delete")
_STYLE = ("body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
          "code,pre{font:13px ui-monospace,monospace;background:#f4f4f4;padding:.1rem .3rem;border-radius:3px}"
          "h2{margin-top:2rem;border-bottom:1px solid #ddd}.m{font-weight:700;text-transform:uppercase;width:4rem;"
          "display:inline-block}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;"
          "text-align:left;vertical-align:top}")


def _params(op: dict[str, Any]) -> str:
    rows = [f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p.get('in', ''))}</td>"
            f"<td>{'yes' if p.get('required') else ''}</td><td>{escape(p.get('description', '') or '')}</td></tr>"
            for p in op.get("parameters", [])]
    if not rows:
        return ""
    return "<table><tr><th>parameter</th><th>in</th><th>required</th><th>meaning</th></tr>" + "".join(rows) + "</table>"


def _schema_fields(spec: dict[str, Any], ref: str | None) -> str:
    if not ref:
        return ""
    schema = spec.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[-1], {})
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    rows = [f"<tr><td><code>{escape(name)}</code></td><td>{'yes' if name in required else ''}</td>"
            f"<td>{escape(str(p.get('description', '') or p.get('format', '') or p.get('type', '')))}</td></tr>"
            for name, p in props.items()]
    return ("<p>Body (JSON):</p><table><tr><th>field</th><th>required</th><th>meaning</th></tr>"
            + "".join(rows) + "</table>") if rows else ""


def render(spec: dict[str, Any]) -> str:
    info = spec.get("info", {})
    title = escape(info.get("title", "API"))
    parts = [f"<!doctype html><html lang=en><meta charset=utf-8><title>{title} API</title>",
             f"<style>{_STYLE}</style><h1>{title} API {escape(info.get('version', ''))}</h1>",
             f"<pre>{escape(info.get('description', '') or '')}</pre>",
             "<p>Machine-readable: <a href=/openapi.json><code>/openapi.json</code></a>. "
             "Every request needs <code>Authorization: Bearer TOKEN</code> (the team's token).</p>"]
    for path, ops in sorted(spec.get("paths", {}).items()):
        for method in _METHODS:
            op = ops.get(method)
            if op is None:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            parts.append(f"<h2><span class=m>{method}</span> <code>{escape(path)}</code></h2>"
                         f"<p>{escape(op.get('summary', '') or '')}</p>"
                         f"<pre>{escape(op.get('description', '') or '')}</pre>"
                         + _params(op) + _schema_fields(spec, body.get("$ref")))
    return "".join(parts)


def install_docs(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/web/", status_code=307)

    @app.get("/docs", include_in_schema=False)
    def docs(_: Request) -> HTMLResponse:
        # No script at all, and nothing from elsewhere: the one inline style is all it needs.
        return HTMLResponse(render(app.openapi()), headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff"})
