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
    """backboneio next to bare python-socketio and Feathers 5, pinned, interleaved; writes
    the tables into docs/benchmarks.md (needs node, npm, taskset; about 15 minutes).
    Arguments replace the defaults: `nox -s bench -- --tiny`, see `bench/run.py --help`."""
    session.install("-r", "requirements-test.txt", "py-spy==0.4.3")
    args = session.posargs or ["--profile", "--update-docs", "--json", "bench/latest.json"]
    session.run("python", "bench/run.py", *args)
