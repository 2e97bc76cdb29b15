"""The auth example: a Flask login and backboneio in one process, one port.

    python examples/auth/app.py --port 3000
    # open http://127.0.0.1:3000/, read the messages, log in as alice or bob to write

Flask owns ``/``, ``/login`` and ``/logout`` and keeps who is logged in in its
signed session cookie; the backboneio-session-auth plugin reads the same
cookie from the Socket.IO handshake, so ``session["user"]`` is the identity
on the socket. ``login_required`` lets anonymous visitors read but not write,
and only a message's author may change or delete it.
"""

from __future__ import annotations

import argparse
import html
import os
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any

import backboneio
from backboneio.backend import Middleware
from backboneio.plugins import load_plugins
from backboneio.settings import Settings
from backboneio.stores import MemoryStore
from flask import Flask, redirect, request, send_from_directory, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

# Demo accounts. A real application keeps users in its database; the point
# here is only that the password is checked by Flask, never by the socket.
USERS = {
    "alice": generate_password_hash("alice-password"),
    "bob": generate_password_hash("bob-password"),
}

# Where the page loads the browser libraries from; --assets DIR serves them
# from a local node_modules instead (npm install backbone underscore jquery socket.io-client).
CDN = {
    "jquery": "https://cdn.jsdelivr.net/npm/jquery@3.7.1/dist/jquery.min.js",
    "underscore": "https://cdn.jsdelivr.net/npm/underscore@1.13.7/underscore-min.js",
    "backbone": "https://cdn.jsdelivr.net/npm/backbone@1.6.1/backbone-min.js",
    "socket.io": "https://cdn.jsdelivr.net/npm/socket.io-client@4.8.1/dist/socket.io.min.js",
}
LOCAL = {
    "jquery": "jquery/dist/jquery.min.js",
    "underscore": "underscore/underscore-min.js",
    "backbone": "backbone/backbone-min.js",
    "socket.io": "socket.io-client/dist/socket.io.min.js",
}

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Messages</title>
<style>
 body {{ font-family: sans-serif; max-width: 40em; margin: 2em auto; }}
 li .author {{ color: #666; margin-right: .5em; }}
 .error {{ color: #b00; }}
</style></head>
<body>
<h1>Messages</h1>
{account}
<ul id="messages"></ul>
<form id="send"><input id="text" placeholder="Say something" autocomplete="off">
<button>Send</button></form>
<p id="status" class="error"></p>
{scripts}
<script>
  Backbone.io.connect();
  var Messages = Backbone.Collection.extend({{ backend: 'messages' }});
  var messages = new Messages();
  var list = document.getElementById('messages');
  function render() {{
    list.innerHTML = '';
    messages.each(function (m) {{
      var li = document.createElement('li');
      var who = document.createElement('span');
      who.className = 'author';
      who.textContent = m.get('author') || '?';
      li.appendChild(who);
      li.appendChild(document.createTextNode(m.get('text') || ''));
      list.appendChild(li);
    }});
  }}
  messages.on('add remove change reset sync', render);
  messages.bindBackend();
  messages.fetch();
  document.getElementById('send').addEventListener('submit', function (e) {{
    e.preventDefault();
    var input = document.getElementById('text');
    messages.create({{ text: input.value }}, {{
      wait: true,
      success: function () {{
        input.value = '';
        document.getElementById('status').textContent = '';
      }},
      error: function (model, err) {{
        document.getElementById('status').textContent =
          (err && err.message) || 'Could not send';
      }}
    }});
  }});
</script>
</body></html>
"""

LOGGED_IN = """<form method="post" action="/logout">Logged in as <b>{user}</b>
<button>Log out</button></form>"""
LOGGED_OUT = """<form method="post" action="/login">
<input name="username" placeholder="alice" autocomplete="username">
<input name="password" type="password" placeholder="alice-password"
autocomplete="current-password"> <button>Log in</button>{error}</form>
<p>You can read without logging in; sending needs an account.</p>"""


def create_flask_app(secret_key: str, assets: str | None = None) -> Flask:
    app = Flask(__name__)
    app.secret_key = secret_key
    # Lax keeps the cookie off cross-site requests; the Socket.IO handshake is
    # same-origin, so it still carries it.
    app.config.update(SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True)

    def script_tags() -> str:
        urls = {name: f"/assets/{path}" for name, path in LOCAL.items()} if assets else CDN
        names = ("jquery", "underscore", "backbone", "socket.io")
        tags = [f'<script src="{html.escape(urls[n])}"></script>' for n in names]
        return "\n".join([*tags, '<script src="/backbone.io.js"></script>'])

    @app.get("/")
    def index() -> str:
        user = session.get("user")
        error = request.args.get("error")
        account = (
            LOGGED_IN.format(user=html.escape(user))
            if user
            else LOGGED_OUT.format(
                error=' <span class="error">Wrong name or password</span>' if error else ""
            )
        )
        return PAGE.format(account=account, scripts=script_tags())

    @app.post("/login")
    def login() -> Any:
        name = request.form.get("username", "")
        password = request.form.get("password", "")
        hashed = USERS.get(name)
        if hashed is None or not check_password_hash(hashed, password):
            return redirect(url_for("index", error=1))
        session.clear()
        session["user"] = name
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return redirect(url_for("index"))

    if assets:
        # Flask resolves relative paths against the app's folder, not the cwd.
        assets = os.path.abspath(assets)

        @app.get("/assets/<path:path>")
        def asset(path: str) -> Any:
            return send_from_directory(assets, path)

    return app


def stamp_author(
    req: backboneio.Request, res: backboneio.Response, next: Callable[..., None]
) -> None:
    # The author comes from the verified identity, never from what the browser sent.
    req.model["author"] = req.identity
    req.model["at"] = time.time()
    next()


def authors_only(store: MemoryStore) -> Middleware:
    """Update, patch and delete only for the author of the stored message.

    It reads the stored message, not the one the client sent: the client's
    copy can claim any author. The read and the write run without yielding
    to other clients in between, so the check holds for the write it guards.
    """

    def check(req: backboneio.Request, res: backboneio.Response, next: Callable[..., None]) -> None:
        try:
            stored = store.models.get(req.model_id)
        except TypeError:  # an unhashable id, which the store refuses as BadRequest
            stored = None
        if stored is None:
            return next()  # the store answers NotFound (or BadRequest) itself
        if stored.get("author") != req.identity:
            raise backboneio.Forbidden("Only the author may change or delete a message")
        if req.method != "delete":
            # An edit keeps who wrote it and when, whatever the client sends.
            req.model["author"] = req.identity
            if "at" in stored:
                req.model["at"] = stored["at"]
        return next()

    return check


def build_server(secret_key: str, assets: str | None = None) -> backboneio.Server:
    """The Flask app and the ``messages`` backend behind one Socket.IO server."""
    settings = Settings(
        {
            "PLUGINS": ["backboneio-session-auth"],
            "SESSION_AUTH_SECRET_KEY": secret_key,
            "SESSION_AUTH_IDENTITY_KEY": "user",
            "BACKENDS": {
                "messages": {"login_required": ["create", "update", "patch", "delete"]},
            },
        },
        source="examples/auth/app.py",
    )
    plugins = load_plugins(settings)  # declares and checks the plugin's settings
    messages = backboneio.create_backend()
    store = backboneio.stores.memory()
    messages.use("create", stamp_author)
    messages.use("update", "patch", "delete", authors_only(store))
    messages.use(store)
    flask_app = create_flask_app(secret_key, assets)
    return backboneio.listen(flask_app, {"messages": messages}, settings=settings, plugins=plugins)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--assets", metavar="DIR", help="serve the JS libraries from DIR")
    args = parser.parse_args(argv)
    # One process serves both sides, so a key made at start-up is shared by
    # Flask and the plugin; set AUTH_EXAMPLE_SECRET_KEY to keep logins across restarts.
    secret_key = os.environ.get("AUTH_EXAMPLE_SECRET_KEY") or secrets.token_hex(32)
    server = build_server(secret_key, args.assets)
    print(f"auth example on http://{args.host}:{args.port}/", flush=True)
    backboneio.run(server, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
