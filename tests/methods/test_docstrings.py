"""Every registered method class documents itself (help(fastadv.methods.TRADES) shows it):
the paper with its arXiv id, the official repository, the update, and one entry per field
of the form ``name (type, default VALUE): text`` whose VALUE equals the dataclass default,
whose text says where the default comes from, and, for pixel quantities, the unit."""
import ast
import dataclasses
import inspect
import operator
import re

import pytest

from fastadv import methods

ARXIV = re.compile(r"arXiv \d{4}\.\d{4,5}\b")
REPO = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")
ENTRY = re.compile(r"^    (\w+) \((.+?), default (.+?)\): (.*)$")
SOURCE = re.compile(r"code|paper|README|--\w")
PIXEL_FIELDS = {"eps", "alpha", "init_scale"}
_OPS = {ast.Div: operator.truediv, ast.Mult: operator.mul, ast.USub: operator.neg}


def value_of(text):
    """The value of a documented default: a literal or a product/quotient of numbers."""
    def ev(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        raise ValueError(f"not a plain default: {text!r}")
    return ev(ast.parse(text, mode="eval").body)


def entries(doc):
    """{field: (type text, default text, description)} of the Attributes section."""
    lines = doc.split("\n")
    start = lines.index("Attributes:") + 1
    found, current = {}, None
    for line in lines[start:]:
        if not line.strip():
            break
        match = ENTRY.match(line)
        if match:
            current = match.group(1)
            found[current] = [match.group(2), match.group(3), match.group(4)]
        elif line.startswith("        ") and current is not None:
            found[current][2] += " " + line.strip()
        else:
            raise AssertionError(f"unexpected line in Attributes: {line!r}")
    return found


CLASSES = [methods.get(name).__class__ for name in methods.available()]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_class_docstring_names_paper_repository_and_update(cls):
    doc = cls.__dict__.get("__doc__") or ""
    assert "Attributes:" in doc, f"{cls.__name__} has no docstring of its own"
    assert ARXIV.search(doc), f"{cls.__name__}: no arXiv id"
    assert REPO.search(doc), f"{cls.__name__}: no repository URL"
    assert "Update" in doc and "loss" in doc, f"{cls.__name__}: the update is not written out"
    assert cls.__name__ in methods.__all__


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_every_field_is_documented_with_its_default(cls):
    documented = entries(inspect.cleandoc(cls.__doc__))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert list(documented) == list(fields), "document every field, in declaration order"
    for name, (type_text, default_text, text) in documented.items():
        default = fields[name].default
        assert value_of(default_text) == pytest.approx(default) if isinstance(default, float) \
            else value_of(default_text) == default, f"{cls.__name__}.{name}: documented default"
        expected_type = "None" if default is None else type(default).__name__
        assert expected_type in type_text, f"{cls.__name__}.{name}: type {type_text!r}"
        assert SOURCE.search(text), f"{cls.__name__}.{name}: say where the default comes from"
        if name in PIXEL_FIELDS:
            assert "pixel units" in text, f"{cls.__name__}.{name}: give the unit"


def test_help_shows_the_docstring():
    text = inspect.getdoc(methods.TRADES)
    assert text.startswith("TRADES:") and "arXiv 1901.08573" in text
