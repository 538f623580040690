"""mmrft.registry.Registry: the one mapping type behind every registry of the package."""

import sys
import types
from collections.abc import Mapping

import pytest

from mmrft.registry import Registry


def test_mapping_interface_and_decorator():
    reg: Registry = Registry("thing")
    assert isinstance(reg, Mapping)
    assert reg.names() == [] and len(reg) == 0 and dict(reg) == {}
    with pytest.raises(KeyError, match="unknown thing 'a'; known: <none>"):
        reg["a"]
    assert reg.get("a") is None and reg.get("a", 3) == 3

    @reg.register("b", colour="blue")
    def fb():
        return "b"

    @reg.register("a")
    def fa():
        return "a"

    assert fb() == "b"  # the decorator returns the function unchanged
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"] and len(reg) == 2
    assert "a" in reg and "c" not in reg and 3 not in reg
    assert reg["a"] is fa and dict(reg.items()) == {"a": fa, "b": fb}
    assert reg.info("b") == {"colour": "blue"} and reg.info("a") == {}
    with pytest.raises(KeyError, match="unknown thing 'c'; known: a, b"):
        reg.info("c")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(fb)
    reg.register("a", override=True)(fb)
    assert reg["a"] is fb
    reg.unregister("a")
    assert "a" not in reg
    with pytest.raises(ValueError):
        reg.register("")
    assert reg.add("c", 42) == 42 and reg["c"] == 42  # entries need not be functions (classes, instances)


def test_the_same_function_registered_again_is_not_a_conflict():
    reg: Registry = Registry("thing")

    def f():
        pass

    g = types.FunctionType(f.__code__, {}, "f")  # same module and qualified name: a module imported twice
    g.__qualname__, g.__module__ = f.__qualname__, f.__module__
    reg.register("f")(f)
    reg.register("f")(g)
    assert reg["f"] is g


def test_builtin_modules_load_on_first_miss(tmp_path, monkeypatch):
    pkg = tmp_path / "regplugin_mod.py"
    pkg.write_text("from tests.test_registry import LAZY\n@LAZY.register('late')\ndef late():\n    return 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("regplugin_mod", None)
    global LAZY
    LAZY = Registry("lazy thing", builtin_modules=["regplugin_mod"])
    assert "regplugin_mod" not in sys.modules
    assert LAZY["late"]() == 7  # imported on the first lookup that missed
    assert LAZY.names() == ["late"]


def test_import_paths(tmp_path, monkeypatch):
    (tmp_path / "regpath_mod.py").write_text("def score(x):\n    return x + 1\nNOT_CALLABLE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry = Registry("reward", import_paths=True)
    assert reg["regpath_mod:score"](1) == 2
    assert "regpath_mod:score" in reg.names()  # registered under the exact string
    with pytest.raises(KeyError, match="cannot import module 'no_such_mod'"):
        reg["no_such_mod:f"]
    with pytest.raises(KeyError, match="has no attribute 'nope'"):
        reg["regpath_mod:nope"]
    with pytest.raises(KeyError, match="non-callable int"):
        reg["regpath_mod:NOT_CALLABLE"]
    plain: Registry = Registry("thing")
    with pytest.raises(KeyError, match="unknown thing 'regpath_mod:score'"):
        plain["regpath_mod:score"]


LAZY: Registry = Registry("lazy thing")
