"""Errors in the command line or its config files, as one line that names the option or file."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from fedrl_lightning.errors import ConfigError

__all__ = [
    "check_config_files",
    "config_error_of",
    "construction_error",
    "one_line",
    "plain_type",
    "refuse_nulls",
]

HEADER = re.compile(r'Parser key "([^"]+)":?\s*(.*)')
NESTED = re.compile(r"--([\w.]+): (.*)")
EXPECTED = re.compile(r"Expected an? (.+?)(?:\. Got value:? ?(.*))?")
NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
GIVEN_CLASS = re.compile(r"Given value: Namespace\(class_path='([^']+)'")
GIVEN = re.compile(r"^\s*Given value: (.*)$", re.MULTILINE)
NESTED_ARG = re.compile(r"NestedArg\(key='([^']+)', val=(.*)\)")
SUBTYPES = re.compile(r"^\s*Subtypes: \[(.*)\]$", re.MULTILINE)
TYPED_OPTION = "__subclasses_disabled__=True"  # how the parser shows a dataclass's value
REQUIRED = re.compile(r"--([\w.]+): \w+: the following arguments are required: (.+)")
NOT_A_CLASS = ("Expected a dot import path", "Expected a path but", "Import path", "No module")
TYPE_WORDS = {
    "<class 'int'>": "an integer",
    "<class 'float'>": "a number",
    "<class 'bool'>": "true or false",
    "<class 'str'>": "a string",
    "<class 'dict'>": "a mapping such as {key: value}",
    "<class 'list'>": "a list such as [a, b]",
    "<class 'NoneType'>": "null",
}


def plain_type(expected: str) -> str:
    """``<class 'int'>`` becomes ``an integer``; ``typing.Literal['a', 'b']`` ``one of a, b``."""
    literal = re.fullmatch(r"typing\.Literal\[(.*)\]", expected)
    if literal:
        return "one of " + ", ".join(v.strip().strip("'\"") for v in literal.group(1).split(","))
    return TYPE_WORDS.get(expected, expected)


def one_line(message: str, class_options: dict[str, str] | None = None) -> str:
    """Squeeze a parser message into one line that starts with the offending option.

    jsonargparse reports ``Parser key "model.gamma": Expected a <class 'float'>. Got value:
    abc``, and for an option that takes a class (a strategy) nests the failing argument in a
    list of union errors. This returns ``--model.gamma: expected a number, got 'abc'``, or
    ``--trainer.strategy.weight_by: expected one of episodes, steps, got 'stepz'``.

    Args:
        message: The parser's message.
        class_options: For options that take a class, by dotted name, the text to show when
            the value names no known class (the built-in choices).

    Returns:
        One line, without the ``error:`` prefix.
    """
    line = _squeeze(message, class_options or {})
    required = REQUIRED.fullmatch(line)
    if required and TYPED_OPTION in message:  # a field of data.byzantine, say, left out
        first, *others = required.group(2).split(", ")
        also = f" (and {', '.join(others)})" if others else ""
        return f"--{required.group(1)}.{first}: must be given{also}"
    return line


def _squeeze(message: str, options: dict[str, str]) -> str:
    """:func:`one_line`'s line, before a left-out field is named."""
    lines = [_bare(line) for line in message.strip().splitlines() if _bare(line)]
    match = HEADER.match(lines[0]) if lines else None
    if match is None:
        return ": ".join(lines[:2]) if lines else "invalid command line"
    key, rest = match.groups()
    entry = _mapping_entry(message)
    if entry is not None:
        return f"--{key}.{entry}"
    shape = _dataclass_shape(message)
    if shape is not None:
        shown = GIVEN.findall(message)
        return f"--{key}: expected {shape}, got {shown[-1] if shown else ''!r}"
    details = [rest, *lines[1:]] if rest else lines[1:]
    given_value = GIVEN.search(message)
    given = given_value.group(1).strip() if given_value else ""
    if any("Union subtypes" in detail for detail in details):
        details = _union_errors(details)
        if key in options and any(
            detail.startswith((*NOT_A_CLASS, "Expected a dot import path")) for detail in details
        ):
            return f"--{key}: {options[key]}"
        expected = [EXPECTED.fullmatch(detail) for detail in details]
        matched = [match for match in expected if match is not None]
        if len(details) > 1 and len(matched) == len(expected):
            kinds = " or ".join(plain_type(match.group(1)) for match in matched)
            return f"--{key}: expected {kinds}, got {given!r}"
        specific = [d for d, match in zip(details, expected, strict=True) if not match]
        chosen = GIVEN_CLASS.search(message)
        nested = NESTED.fullmatch(specific[0]) if specific else None
        if nested and chosen:  # a class was named, and one of its typed options refused
            return f"--{key}.{nested.group(1)}: {nested.group(2)}"
        if specific and chosen:  # a class was named, and refused its arguments
            return f"--{key}: {chosen.group(1).rpartition('.')[2]}: {specific[0]}"
        details = specific + [detail for detail in details if detail not in specific]
    for detail in details:
        if detail.startswith(NOT_A_CLASS) and key in options:
            return f"--{key}: {options[key]}"
        nested = NESTED.match(detail)
        if nested:
            return f"--{key}.{nested.group(1)}: {_reason(nested.group(2), given)}"
        rejected = NOT_ACCEPTED.match(detail)
        if rejected:
            return f"--{key}.{rejected.group(1)}: not an argument of this {key.split('.')[-1]}"
        return f"--{key}: {_reason(detail, given)}"
    return f"--{key}: invalid value"


def _mapping_entry(message: str) -> str | None:
    """``name: expected ..., got ...`` for the entry of a mapping option that the parser refused.

    An option typed ``dict[str, X | Y]`` (``data.heterogeneity``) is refused as a whole; this
    finds the entry whose value is the one refused, and says which types it may have.
    """
    givens, subtypes = GIVEN.findall(message), SUBTYPES.findall(message)
    if len(givens) < 2 or len(subtypes) < 2 or not subtypes[0].startswith("dict["):
        return None
    kinds = " or ".join(_type_words(hint) for hint in _split_types(subtypes[1]))
    dotted = NESTED_ARG.fullmatch(givens[-1])  # --data.heterogeneity.length 5
    if dotted:
        return f"{dotted.group(1)}: expected {kinds}, got {dotted.group(2)}"
    try:
        whole = ast.literal_eval(givens[-1])
    except (ValueError, SyntaxError):
        return None
    try:
        refused = ast.literal_eval(givens[0])
    except (ValueError, SyntaxError):  # a string is shown without quotes
        refused = givens[0]
    if not isinstance(whole, dict):
        return None
    names = [name for name, value in whole.items() if value == refused]
    if not names:
        return None
    return f"{names[0]}: expected {kinds}, got {refused!r}"


def _dataclass_shape(message: str) -> str | None:
    """``{field: ..., ...} or null`` for a typed option given something other than a mapping.

    The parser would say that it expected a class's import path, which a typed option
    (``data.byzantine``) never takes.
    """
    subtypes = SUBTYPES.findall(message)
    if not subtypes or not ("dot import path" in message or "Not a valid subclass" in message):
        return None
    words = [_type_words(hint) for hint in _split_types(subtypes[0])]
    if not any(word.startswith("{") for word in words):
        return None
    return " or ".join(words)


def _split_types(listed: str) -> list[str]:
    """The types of a parser's ``Subtypes`` list, split at its top-level commas."""
    types_, depth, start = [], 0, 0
    for at, char in enumerate(listed):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            types_.append(listed[start:at].strip())
            start = at + 1
    return [*types_, listed[start:].strip()]


def _type_words(hint: str) -> str:
    """A type as a user writes a value of it: ``[a, b]`` numbers, or ``{field: ...}``."""
    pair = re.fullmatch(r"tuple\[(float|int)(?:, (?:float|int))*\]", hint)
    if pair:
        return f"a list of {hint.count(',') + 1} numbers"
    named = re.fullmatch(r"<class '(.+)\.(\w+)'>", hint)
    if named:
        cls = getattr(importlib.import_module(named.group(1)), named.group(2), None)
        if dataclasses.is_dataclass(cls):
            return "{" + ", ".join(f"{f.name}: ..." for f in dataclasses.fields(cls)) + "}"
    return plain_type(hint)


def _bare(line: str) -> str:
    """A message line without its indent, list bullet or closing colon."""
    line = line.strip()
    return (line[2:] if line.startswith("- ") else line).removesuffix(":").strip()


def _union_errors(details: list[str]) -> list[str]:
    """The errors listed for an optional option's union, less the ``None`` alternative."""
    errors = []
    for detail in details[details.index("Errors") + 1 :] if "Errors" in details else details:
        if detail.startswith(("Given value", "Subtypes")):
            break
        if "Union subtypes" not in detail and detail != "Expected a <class 'NoneType'>":
            errors.append(detail)
    return errors


def _reason(detail: str, given: str) -> str:
    expected = EXPECTED.fullmatch(detail)
    if expected:
        value = expected.group(2) if expected.group(2) is not None else given
        return f"expected {plain_type(expected.group(1))}, got {value!r}"
    return detail[0].lower() + detail[1:] if detail[1:2].islower() else detail


def config_error_of(err: BaseException) -> ConfigError | None:
    """The :class:`ConfigError` that ``err`` is, or was raised from, if any.

    jsonargparse wraps what a class's constructor raises (a strategy refusing its arguments)
    in errors of its own; the original names the option.
    """
    current: BaseException | None = err
    while current is not None:
        if isinstance(current, ConfigError):
            return current
        current = current.__cause__ or current.__context__
    return None


def construction_error(err: BaseException, config: Any) -> ConfigError:
    """One line for a class of the config whose constructor raised something of its own.

    jsonargparse reports a constructor's exception (``MLFlowLogger`` refusing its tracking
    URI, say) among the errors of every type the option allows; this names the option and
    the class, and gives the constructor's own message.

    Args:
        err: What instantiating the config's classes raised.
        config: The parsed config, to find which option names the class.
    """
    text = str(err)
    given = GIVEN_CLASS.search(text)
    reasons = [
        line.strip()[2:]
        for line in text.splitlines()
        if line.strip().startswith("- ") and not line.strip().startswith("- Expected a")
    ]
    reason = reasons[0] if reasons else (text.strip().splitlines() or [type(err).__name__])[0]
    if given is None:
        return ConfigError(f"could not build the run's classes: {reason}")
    class_path = given.group(1)
    plain = config.as_dict() if hasattr(config, "as_dict") else config
    option = _option_naming(plain, class_path) or "the config"
    return ConfigError(f"{option}: {class_path.rpartition('.')[2]} could not be built: {reason}")


def _option_naming(config: Any, class_path: str, prefix: str = "") -> str | None:
    """The dotted option whose value has ``class_path``, searching nested sections and lists."""
    if isinstance(config, list):
        for item in config:
            found = _option_naming(item, class_path, prefix)
            if found:
                return found
        return None
    if not isinstance(config, dict):
        return None
    if config.get("class_path") == class_path:
        return prefix or None
    for key, value in config.items():
        found = _option_naming(value, class_path, f"{prefix}.{key}" if prefix else str(key))
        if found:
            return found
    return None


def check_config_files(args: list[str]) -> None:
    """Refuse a ``--config`` file that is missing or not valid YAML, naming the file.

    jsonargparse would report a YAML error without the file's name.
    """
    pairs = zip(args, args[1:], strict=False)
    given = [value for flag, value in pairs if flag in ("--config", "-c")]
    given += [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    for value in given:
        path = Path(value)
        try:
            parsed = yaml.safe_load(path.read_text())
        except OSError as err:
            raise ConfigError(f"--config {value}: cannot read it ({err.strerror})") from None
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"--config {value}: not a YAML text file (byte {err.start} is not UTF-8)"
            ) from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"--config {value}: not valid YAML ({where}{problem})") from None
        if parsed is None:
            raise ConfigError(f"--config {value}: holds no options (an empty YAML file)")
        if not isinstance(parsed, dict):
            raise ConfigError(
                f"--config {value}: not a config (its YAML is a {type(parsed).__name__}, "
                "not a mapping of options such as trainer: {num_rounds: 3})"
            )


def allows_none(hint: Any) -> bool:
    """Whether a type hint admits ``None``: ``Optional[...]``, ``X | None`` or ``Any``."""
    if hint is Any or hint is type(None):
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(allows_none(arg) for arg in typing.get_args(hint))
    return False


def refuse_nulls(parser: Any, config: Any) -> None:
    """Refuse ``null`` for options whose type does not admit it, and non-finite numbers.

    jsonargparse checks types on the command line, but takes a ``null`` from a YAML file
    as it is, which a constructor would then meet as ``None``; and YAML's ``.nan`` and
    ``.inf`` pass as numbers, and slip through range checks (``nan <= 0`` is false).

    Args:
        parser: The subcommand's parser.
        config: Its parsed config.

    Raises:
        ConfigError: Naming the first such option.
    """
    for action in parser._actions:
        hint = getattr(action, "_typehint", None)
        if hint is None or action.dest not in config:
            continue
        value = config[action.dest]
        _refuse(action.dest, value, hint)
        init_args = getattr(value, "init_args", None)
        if init_args is not None:
            _refuse_null_init_args(action.dest, value.class_path, init_args)


def _refuse_null_init_args(dest: str, class_path: str, init_args: Any) -> None:
    module, _, name = class_path.rpartition(".")
    hints = typing.get_type_hints(getattr(importlib.import_module(module), name).__init__)
    for key, value in vars(init_args).items():
        if key in hints:
            _refuse(f"{dest}.{key}", value, hints[key])


def _refuse(name: str, value: Any, hint: Any) -> None:
    if value is None and not allows_none(hint):
        raise ConfigError(f"--{name}: expected {_hint_words(hint)}, got null")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"--{name}: expected a finite number, got {value}")


def _hint_words(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(str(arg) for arg in typing.get_args(hint))
    return plain_type(repr(hint) if not isinstance(hint, type) else f"<class '{hint.__name__}'>")
