"""Developer sessions: `nox -s tests`, `cluster`, `lint`, `demo`, `bench`, `docs`."""

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
def cluster(session: nox.Session) -> None:
    """The protocol, channel, resume, auth and safe-write tests with every server three
    processes on one Redis (tests/cluster-suite.txt; needs redis-server)."""
    session.install("-r", "requirements-test.txt")
    session.run("pytest", "@tests/cluster-suite.txt", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, then mypy --strict on core and each plugin ([tool.mypy] in pyproject.toml)."""
    # mypy follows imports into the plugins' dependencies, so they are installed too.
    session.install("-r", "requirements-test.txt")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """The demo on http://127.0.0.1:3000 (pass --assets DIR to serve libraries locally)."""
    session.install("-e", ".", "-e", "plugins/backboneio-sqlalchemy")
    session.run("backboneio", "serve", "--demo", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The docs site on http://127.0.0.1:8000, rebuilt on every edit
    (`nox -s docs -- build` checks it as CI does)."""
    session.install("mkdocs==1.6.1", "mkdocs-material==9.8.1", "pymdown-extensions==13.1.2")
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    if session.posargs[:1] == ["build"]:
        session.run("mkdocs", "build", "--strict", *session.posargs[1:])
    else:
        session.run("mkdocs", "serve", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """backboneio next to bare python-socketio and Feathers 5, pinned, interleaved; writes
    the tables into docs/benchmarks.md (needs node, npm, taskset; about 15 minutes).
    Arguments replace the defaults: `nox -s bench -- --tiny`, see `bench/run.py --help`."""
    session.install("-r", "requirements-test.txt", "py-spy==0.4.3")
    args = session.posargs or ["--profile", "--update-docs", "--json", "bench/latest.json"]
    session.run("python", "bench/run.py", *args)
