"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s demo`, `nox -s bench`."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite: core, plugins, browser (needs chromium, postgresql, redis-server)."""
    session.install("-r", "requirements-test.txt")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def demo(session: nox.Session) -> None:
    """The demo on http://127.0.0.1:3000 (pass --assets DIR to serve libraries locally)."""
    session.install("-e", ".", "-e", "plugins/backboneio-sqlalchemy")
    session.run("backboneio", "serve", "--demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Throughput of the stores and the protocol, as ratios to the memory store."""
    session.install("-r", "requirements-test.txt")
    session.run("python", "bench/run.py", *session.posargs)
