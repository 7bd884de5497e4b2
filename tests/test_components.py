"""One convention for registered components: each registry's names are exactly its module map in
`pgolf.components` (so lookups load lazily and the exporter knows the files), classes carry a
`name` and an `Options` dataclass parsed by one `from_dict`, and legality is stated once."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from pgolf.components import ILLEGAL_METHODS, MODULES, legal_methods
from pgolf.errors import ConfigError


def registries():
    from pgolf.data.transforms import TRANSFORMS
    from pgolf.evaluate.methods.base import METHODS
    from pgolf.model.activations import ACTIVATIONS
    from pgolf.model.addons.base import ADDONS
    from pgolf.quant.compress import COMPRESSORS
    from pgolf.quant.encoding import DECODERS
    from pgolf.quant.registry import QUANTIZERS
    from pgolf.train.averaging import AVERAGERS

    return [METHODS, ACTIVATIONS, ADDONS, COMPRESSORS, DECODERS, QUANTIZERS, AVERAGERS, TRANSFORMS]


def test_every_registry_holds_exactly_its_module_map():
    regs = registries()
    assert {r.kind for r in regs} == set(MODULES)
    for kind, modules in MODULES.items():
        for module in set(modules.values()):
            importlib.import_module(module)
    for r in regs:
        assert set(r._entries) == set(MODULES[r.kind]), r.kind


def test_registered_classes_have_a_name_and_options_parsed_by_one_parser():
    from pgolf.evaluate.methods.base import METHODS
    from pgolf.model.addons.base import ADDONS

    for registry in (ADDONS, METHODS):
        for name in registry.load():
            cls = registry.get(name)
            assert cls.name == name and dataclasses.is_dataclass(cls.Options)
            assert dataclasses.asdict(registry.options(name, {}, "here")) == dataclasses.asdict(cls.Options())
    with pytest.raises(ConfigError, match="unknown key 'model.addons.xsa.lats'; did you mean 'last'"):
        ADDONS.options("xsa", {"lats": 2}, "model.addons.xsa")


def test_legality_is_stated_once_and_read_by_the_classes():
    from pgolf.evaluate.methods.base import load_methods

    registry = load_methods(None)
    assert {n for n in registry if not registry.get(n).legal} == set(ILLEGAL_METHODS)
    assert all(registry.get(n).why_illegal for n in ILLEGAL_METHODS)
    assert legal_methods(["sliding", "ttt", "hedge"]) == ["sliding", "ttt"]
    assert legal_methods(["slot"]) == ["standard"]


def test_an_unknown_name_names_the_closest_known_one():
    from pgolf.quant.registry import get_quantizer

    with pytest.raises(ConfigError, match=r"unknown quantizer 'gptq-int7'; did you mean 'gptq-int8'\?"):
        get_quantizer("gptq-int7")
