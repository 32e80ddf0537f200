"""Run config files: `llava-train --config run.yaml [--flag value ...]`.

One flat YAML mapping of flag names to values, as LLaMA-Factory and axolotl keep a run. Flags on the command line
override the file (the file's values become the parser's defaults, so argparse's own precedence decides). Every run
writes its resolved settings to OUTPUT/run_config.yaml, which re-runs it (`--config OUTPUT/run_config.yaml
--output_dir NEW`). transformers' HfArgumentParser reads a YAML file but has no command-line override; hence this.

`python -m llava.train.config_file from-flags --out FILE -- FLAGS...` writes the flags a script would pass as a file
(configs/train/*.yaml are made from the scripts' dry runs by scripts/make_train_configs.sh).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import shlex
import sys

import yaml

RUN_CONFIG = "run_config.yaml"
# A launch's choices, not the run's: a re-run from the file starts fresh, and a secret never reaches a file.
NOT_WRITTEN = {"help", "resume_from_checkpoint", "overwrite_output_dir", "hub_token", "push_to_hub_token"}


class ConfigError(ValueError):
    """A config file the user must fix (missing, not YAML, an unknown key): one line."""


def split_config_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the --config path or None, the other flags)."""
    path, rest, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config":
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise ConfigError("--config needs a file: --config run.yaml")
            path, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return path, rest


def read_config(path: str, known: set[str] | None = None) -> dict:
    """The file's flag values; every key checked against the flags the parser knows (a typo is named, with the
    nearest flag, instead of being ignored)."""
    if not os.path.isfile(path):
        raise ConfigError(f"--config {path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"--config {path}: not valid YAML{line}: {str(err).splitlines()[0]}") from err
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of flag names to values, got a {type(values).__name__}")
    values = {str(k).removeprefix("--"): v for k, v in values.items()}
    if known is not None:
        for key in values:
            if key not in known or key in ("help", "config"):
                near = difflib.get_close_matches(key, sorted(known), n=1)
                raise ConfigError(f"--config {path}: unknown setting '{key}'"
                                  + (f" (did you mean '{near[0]}'?)" if near else ""))
    return values


def flag_names(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if a.dest != "help"}  # argparse keeps its actions in this list only


def given_on_command_line(argv: list[str]) -> set[str]:
    return {a[2:].split("=", 1)[0] for a in argv if a.startswith("--")}


def parse_with_config(parser, argv: list[str]):
    """(the dataclasses, every resolved setting as a flat dict)."""
    path, rest = split_config_flag(argv)
    values = read_config(path, flag_names(parser)) if path else {}
    if values:
        parser.set_defaults(**values)  # string values are still converted by each flag's type, as argparse does
    namespace, unknown = parser.parse_known_args(rest)
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    resolved = {k: v for k, v in vars(namespace).items() if k not in NOT_WRITTEN}
    return parser.parse_args_into_dataclasses(args=rest), resolved


def _sections(resolved: dict, dataclass_types) -> list[tuple[str, dict]]:
    sections, placed = [], set()
    for dtype in dataclass_types:
        own = set(getattr(dtype, "__annotations__", {}))
        names = [f.name for f in dataclasses.fields(dtype) if f.init and f.name in resolved]
        base = [n for n in names if n not in own] if dtype.__module__.startswith("llava") else []
        mine = [n for n in names if n not in base]
        label = dtype.__name__
        sections.append((f"{label} (llava-asymlora)", {n: resolved[n] for n in mine}))
        if base:
            sections.append((f"{label} (transformers {_transformers_version()})", {n: resolved[n] for n in base}))
        placed.update(names)
    rest = {k: v for k, v in resolved.items() if k not in placed}
    if rest:
        sections.append(("other", rest))
    return sections


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def write_run_config(output_dir: str, resolved: dict, dataclass_types) -> str:
    """OUTPUT/run_config.yaml, atomically: every setting of the run, grouped by where it is defined."""
    path = os.path.join(output_dir, RUN_CONFIG)
    lines = ["# The resolved settings of this run (llava-train). Re-run it with:",
             f"#   llava-train --config {path} --output_dir NEW_OUTPUT",
             "# Flags given after --config override the values below."]
    for title, values in _sections(resolved, dataclass_types):
        lines += ["", f"# --- {title}", yaml.safe_dump(_plain(values), sort_keys=False, allow_unicode=True).rstrip()]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def _plain(values: dict) -> dict:
    """Enums and tuples as YAML's plain types (safe_dump refuses the rest)."""
    out = {}
    for k, v in values.items():
        if hasattr(v, "value") and not isinstance(v, (str, int, float, bool)):
            v = v.value
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


def flags_to_yaml(flags: list[str], parser) -> str:
    """The flags a command passes, typed by the parser, as a config file (only what the flags set)."""
    namespace, unknown = parser.parse_known_args(flags)
    if unknown:
        raise ConfigError(f"unrecognised arguments: {' '.join(unknown)}")
    given = given_on_command_line(flags)
    values = {k: v for k, v in vars(namespace).items() if k in given}
    return yaml.safe_dump(_plain(values), sort_keys=False, allow_unicode=True)


def training_parser():
    import transformers

    from llava.train.args import DataArguments, ModelArguments, TrainingArguments

    return transformers.HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))


def write_from_commands(manifest: str, out_dir: str) -> None:
    """Each manifest line "name<TAB>header<TAB>shell command" becomes out_dir/name.yaml holding the flags the command
    passes to llava.train.train (scripts/make_train_configs.sh writes the manifest from the scripts' dry runs)."""
    parser = training_parser()
    with open(manifest, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for name, header, command in rows:
        words = shlex.split(command)
        if "llava.train.train" not in words:
            raise ConfigError(f"{name}: no llava.train.train in the command: {command[:200]}")
        flags = words[words.index("llava.train.train") + 1:]
        comment = "".join(f"# {line}\n" for line in header.split("\\n"))
        with open(os.path.join(out_dir, f"{name}.yaml"), "w", encoding="utf-8") as f:
            f.write(comment + flags_to_yaml(flags, parser))


def main(argv=None):
    cli = argparse.ArgumentParser(prog="python -m llava.train.config_file")
    sub = cli.add_subparsers(dest="command", required=True)
    make = sub.add_parser("from-flags", help="write llava-train flags as a config file")
    make.add_argument("--out", required=True)
    make.add_argument("flags", nargs=argparse.REMAINDER)
    many = sub.add_parser("from-commands", help="config files from a manifest of training commands")
    many.add_argument("manifest")
    many.add_argument("--out-dir", required=True)
    get = sub.add_parser("get", help="print one setting of a config file (empty if unset)")
    get.add_argument("file")
    get.add_argument("name")
    args = cli.parse_args(argv)
    try:
        if args.command == "get":
            value = read_config(args.file).get(args.name)
            print("" if value is None else value)
        elif args.command == "from-commands":
            write_from_commands(args.manifest, args.out_dir)
        else:
            flags = args.flags[1:] if args.flags[:1] == ["--"] else args.flags
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(flags_to_yaml(flags, training_parser()))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
