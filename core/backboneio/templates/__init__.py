"""``backboneio new-plugin NAME``: the skeleton of a plugin, from the templates in plugin/.

Each template is a file as it will be written, with ``{{dist}}``,
``{{module}}``, ``{{entry_point}}``, ``{{prefix}}`` and ``{{core_version}}``
standing for the names made from NAME.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
MAX_LENGTH = 40

# template -> where it goes in the new folder ({{module}} and {{test}} filled in)
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "module.py.tmpl": "{{module}}.py",
    "test_plugin.py.tmpl": "tests/test_{{test}}.py",
}


@dataclass(frozen=True)
class PluginNames:
    """The names of a plugin called, say, ``word-count``."""

    entry_point: str  # word-count: its name in `backboneio plugins` and PLUGINS
    dist: str  # backboneio-word-count: the distribution and its folder
    module: str  # backboneio_word_count
    prefix: str  # WORD_COUNT_: the start of the settings it declares
    test: str  # word_count: tests/test_word_count.py


def plugin_names(name: str) -> PluginNames:
    """The names made from ``word-count`` (or ``backboneio-word-count``); ValueError if invalid."""
    short = re.sub(r"^backboneio[-_]", "", name)
    if not NAME.fullmatch(short) or len(short) > MAX_LENGTH or short == "backboneio":
        raise ValueError(
            f"{name!r} is not a valid plugin name: use lowercase letters and digits, "
            f"words joined by single hyphens, starting with a letter "
            f"(at most {MAX_LENGTH} characters), like word-count"
        )
    slug = short.replace("_", "-")
    snake = short.replace("-", "_")
    return PluginNames(
        entry_point=slug,
        dist=f"backboneio-{slug}",
        module=f"backboneio_{snake}",
        prefix=f"{snake.upper()}_",
        test=snake,
    )


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    leftover = re.search(r"\{\{\w+\}\}", text)
    assert leftover is None, f"template placeholder {leftover[0]} has no value"
    return text


def new_plugin(name: str, directory: str | Path = ".") -> tuple[Path, list[Path]]:
    """Write the skeleton of plugin ``name`` into a new folder under ``directory``.

    Returns the folder and the files written. ValueError, with one line
    saying why, for an invalid name or a folder that already exists.
    """
    from .. import __version__

    names = plugin_names(name)
    target = Path(directory) / names.dist
    if target.exists():
        raise ValueError(f"{target} already exists; choose another --dir or name")
    major, minor = __version__.split(".")[:2]
    values = {
        "dist": names.dist,
        "module": names.module,
        "entry_point": names.entry_point,
        "prefix": names.prefix,
        "test": names.test,
        "core_version": f"{major}.{minor}",
    }
    templates = resources.files(__name__).joinpath("plugin")
    written = []
    for template, destination in FILES.items():
        path = target / _fill(destination, values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(templates.joinpath(template).read_text(), values))
        written.append(path)
    return target, written
