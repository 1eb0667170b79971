"""MkDocs hook: the references that must not drift from the code are written from it at build time.

A page holds a marker line and the hook puts the generated Markdown in its place:

- ``<!-- generated: space-file -->``: every key of a space file, from the pydantic models in
  ``sweeps/space/schema.py`` (types, defaults, bounds, and the comment beside each field);
- ``<!-- generated: knobs -->``: every model hyperparameter, from ``experiments.settings.FAMILIES``;
- ``<!-- generated: cli -->``: every ``sweep`` sub-command and option, from the argparse parser of
  ``sweeps/cli.py`` (``_parser()``);
- ``<!-- generated: make-targets -->``: every ``make`` target with its ``##`` comment, as ``make help`` prints it.

The same functions serve ``tests/test_docs.py``. Nothing here writes a file.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)


# --- helpers ------------------------------------------------------------------------------------------------

def _cell(text: Any) -> str:
    """Text fit for one Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: Any) -> str:
    return f"`{text}`" if text not in ("", None) else ""


def _field_comments(cls: type) -> dict[str, str]:
    """The comment beside each field of a class (or the comment lines just above it), from its source."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^    (\w+)\s*:", line)
        if match:
            parts = [p.strip() for p in line.split("  #")[1:]]
            beside = [p for p in parts if p and not p.startswith("type:")]
            text = " ".join(above + beside).strip()
            if text:
                comments[match.group(1)] = text
        above = []
    return comments


def _type_name(annotation: Any) -> str:
    """A type as a reader of the YAML file sees it."""
    from pydantic import BaseModel

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        named = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(named)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}" if args else "mapping"
    if origin is tuple:
        return "[" + ", ".join(_type_name(a) for a in args) + "]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if annotation in (bool, int, float, str):
        return {bool: "boolean", int: "integer", float: "number", str: "text"}[annotation]
    if annotation is Any:
        return "any"
    return str(annotation).replace("typing.", "")


def _default(field: Any) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "its own defaults"
    if isinstance(value, dict):
        if not value:
            return "`{}`"
        shown = {k: (v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v) for k, v in value.items()}
        return _code(shown)
    if isinstance(value, list) and not value:
        return "`[]`"
    if value is None:
        return "none"
    return _code(value if not isinstance(value, bool) else str(value).lower())


def _bounds(field: Any) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "at least length"}
    found = []
    for item in field.metadata:
        for name, sign in words.items():
            value = getattr(item, name, None)
            if value is not None:
                found.append(f"{sign} {value}")
    return ", ".join(found)


# --- the space file -----------------------------------------------------------------------------------------

def space_file_models() -> list[type[BaseModel]]:
    """The pydantic models of a space file, the whole file first, in the order a reader meets them."""
    from sweeps.space import schema

    return [schema.SpaceFile, schema.DataFile, schema.TrainValues, schema.IntParam, schema.FloatParam,
            schema.CategoricalParam, schema.Objective, schema.Bound, schema.SweepSettings, schema.Sampler,
            schema.Pruner, schema.Baseline, schema.Resources, schema.StopRules, schema.Plateau]


def space_file_keys() -> dict[str, set[str]]:
    """Each model's name and its keys (for the tests)."""
    return {cls.__name__: set(cls.model_fields) for cls in space_file_models()}


def space_file_reference() -> str:
    from sweeps.space import schema

    out: list[str] = []
    for cls in space_file_models():
        out.append(f"### {cls.__name__}\n")
        doc = inspect.getdoc(cls)
        if doc and cls is not schema.Section and doc != inspect.getdoc(schema.Section):
            out.append(doc.replace("``", "`") + "\n")
        decorators = cls.__pydantic_decorators__
        validators: list[Any] = [*decorators.model_validators.values(), *decorators.field_validators.values()]
        for dec in validators:
            func = getattr(dec.func, "__func__", dec.func)
            text = inspect.getdoc(func)
            if text and getattr(func, "__qualname__", "").startswith(f"{cls.__name__}."):
                out.append(f"Rule: {text.replace('``', '`')}\n")
        comments = _field_comments(cls)
        out.append("| key | type | default | bounds | meaning |")
        out.append("|---|---|---|---|---|")
        for key, field in cls.model_fields.items():
            out.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {_cell(_bounds(field))} | "
                       f"{_cell(comments.get(key, ''))} |")
        out.append("")
    out.append("### Samplers and pruners\n")
    out.append(f"`sweep.sampler.name`: {', '.join(f'`{s}`' for s in schema.SAMPLERS)}. "
               f"`sweep.pruner.name`: {', '.join(f'`{p}`' for p in schema.PRUNERS)}. "
               "Their `options:` are passed as keyword arguments to the Optuna class of that name.\n")
    out.append("### Keys of other tools\n")
    out.append("A W&B sweep file's keys are refused with a hint naming ours:\n")
    out.append("| their key | write instead |")
    out.append("|---|---|")
    for key, hint in schema.SpaceFile.habits.items():
        out.append(f"| `{key}` | {_cell(hint)} |")
    out.append("")
    return "\n".join(out)


def knobs_reference() -> str:
    from experiments import settings

    comments = _settings_comments()
    out = ["| family | hyperparameter | type | default | bounds | per layer | meaning |",
           "|---|---|---|---|---|---|---|"]
    for family, knobs in settings.FAMILIES.items():
        for name, knob in knobs.items():
            bounds = ", ".join(f"{ {'ge': '≥', 'gt': '>', 'le': '≤', 'lt': '<'}[k]} {v}" for k, v in knob.bounds.items())
            depth = f"`{name}_1` … `{name}_<{knob.depth}>`" if knob.depth else ""
            default = str(knob.default).lower() if isinstance(knob.default, bool) else knob.default
            out.append(f"| `{family}` | `{name}` | {_type_name(knob.type)} | `{default}` | {_cell(bounds)} | {depth} | "
                       f"{_cell(comments.get((family, name), ''))} |")
    return "\n".join(out) + "\n"


def _settings_comments() -> dict[tuple[str, str], str]:
    from experiments import settings

    source = inspect.getsource(settings).splitlines()
    comments: dict[tuple[str, str], str] = {}
    family = None
    for line in source:
        start = re.match(r'^    "(\w+)": \{', line)
        if start:
            family = start.group(1)
            continue
        knob = re.match(r'^        "(\w+)": .*#\s*(.+)$', line)
        if family and knob:
            comments[(family, knob.group(1))] = knob.group(2).strip()
    return comments


# --- the command line ---------------------------------------------------------------------------------------

# Settings some options take their default from: left out while the parser is built, so the page shows the
# code's defaults and never a value of the machine that built it (a storage URL may hold a password).
ENVIRONMENT_DEFAULTS = ("SWEEPS_STORAGE", "OPTUNA_STORAGE", "SWEEPS_CLUSTER", "SWEEPS_TRIALS_PER_PROCESS",
                        "SWEEPS_SPACES_DIR")


def _parser() -> argparse.ArgumentParser:
    """``sweep``'s own parser, built without the environment's defaults, its usage 100 columns wide."""
    from sweeps.cli import _parser as build

    saved = {name: os.environ.pop(name) for name in ENVIRONMENT_DEFAULTS if name in os.environ}
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = build()
        for sub in [parser, *_choices(parser).values()]:
            sub.format_usage = _fixed_width(sub.format_usage)  # type: ignore[method-assign]
        return parser
    finally:
        os.environ.update(saved)
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _fixed_width(format_usage: Any) -> Any:
    def usage() -> str:
        columns = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "100"
        try:
            return format_usage()
        finally:
            if columns is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = columns
    return usage


def sub_commands() -> dict[str, argparse.ArgumentParser]:
    """The visible sub-commands of ``sweep`` and their parsers (the hidden ``worker`` left out)."""
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    visible = {choice.dest for choice in action._choices_actions}
    return {name: sub for name, sub in action.choices.items() if name in visible}


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | values | default | meaning |", "|---|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        name = ", ".join(action.option_strings) or action.dest
        if action.choices:
            values = " \\| ".join(f"`{c}`" for c in action.choices)
        elif action.nargs == 0:
            values = "flag"
        else:
            values = f"`{action.metavar or action.dest.upper()}`"
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) or action.nargs == 0 else _code(default)
        rows.append(f"| `{name}` | {values} | {shown} | {_cell(action.help or '')} |")
    return rows


def cli_reference() -> str:
    parser = _parser()
    parser.prog = "sweep"
    out = ["## `sweep`\n", f"{parser.description}\n", "```text", parser.format_usage().strip(), "```\n",
           "Options before the sub-command:\n", *_options_table(parser), ""]
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    for name, sub in sub_commands().items():
        out += [f"## `sweep {name}`\n", f"{helps.get(name, '')}\n", "```text", sub.format_usage().strip(), "```\n",
                *_options_table(sub), ""]
    return "\n".join(out)


# --- the Makefile -------------------------------------------------------------------------------------------

def make_targets() -> dict[str, str]:
    """Each documented make target and its ``##`` comment, as ``make help`` reads them."""
    text = (ROOT / "Makefile").read_text()
    return dict(re.findall(r"^([a-z-]+):.*?## (.*)$", text, re.M))


def make_reference() -> str:
    out = ["| target | what it does |", "|---|---|"]
    for target, comment in make_targets().items():
        out.append(f"| `make {target}` | {_cell(comment)} |")
    return "\n".join(out) + "\n"


GENERATORS = {"space-file": space_file_reference, "knobs": knobs_reference, "cli": cli_reference,
              "make-targets": make_reference}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: put each marker's generated Markdown in its place."""
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)
