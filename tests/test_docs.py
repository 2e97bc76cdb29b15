"""The docs stay honest: every hook documented, the guide's plugin is the real one."""

from __future__ import annotations

import re
from pathlib import Path

from backboneio import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOKS = sorted(
    name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "backboneio_spec")
)


def test_every_hook_has_a_heading_with_its_signature():
    text = (DOCS / "plugin_hooks.md").read_text()
    headings = dict(re.findall(r"^## (\w+)\(([^)]*)\)$", text, re.MULTILINE))
    for hook in HOOKS:
        assert hook in headings, f"docs/plugin_hooks.md has no '## {hook}(...)' heading"
        spec = getattr(hookspecs, hook)
        params = list(spec.__code__.co_varnames[: spec.__code__.co_argcount])
        assert headings[hook].split(", ") == params, f"{hook}: heading does not match the spec"


def test_every_hook_spec_has_a_docstring():
    for hook in HOOKS:
        assert (getattr(hookspecs, hook).__doc__ or "").strip(), hook


def test_the_plugin_guide_shows_the_real_example_plugin():
    guide = (DOCS / "plugin_guide.md").read_text()
    source = (ROOT / "plugins" / "backboneio-timestamps" / "backboneio_timestamps.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, re.DOTALL)
    assert source in blocks, "docs/plugin_guide.md must quote backboneio_timestamps.py verbatim"


def test_every_setting_is_documented():
    from backboneio.settings import CORE_SETTINGS

    text = (DOCS / "settings.md").read_text()
    for setting in CORE_SETTINGS:
        assert f"`{setting.name}`" in text, f"docs/settings.md does not mention {setting.name}"
