"""`ssmake completion bash|zsh`: a completion script generated from the parser. Task
names come from `ssmake graph --format names`, run where the user is completing, so
they follow the nearest Ssmfile (and -C, when given first)."""

from __future__ import annotations

import argparse

from ssmake.errors import EXIT_OK

# Commands whose positional arguments are task names.
_TASK_ARGS = frozenset({"run", "status", "explain", "logs", "watch", "download", "clean", "cancel"})
_PATHS = {"-C": "-d", "-o": "-f", "--dir": "-d", "-f": "-f", "--file": "-f"}

SCRIPT = """\
_ssmake_tasks() {
    ssmake "${_ssmake_dir[@]}" graph --format names 2>/dev/null
}
_ssmake() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd="" i
    local opts values
    _ssmake_dir=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -C) _ssmake_dir=(-C "${COMP_WORDS[i+1]}"); ((i++)) ;;
            -f|--file|--backend) ((i++)) ;;
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    case "$prev" in
%(prev)s
    esac
    case "$cmd" in
%(commands)s
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$values" -- "$cur"))
    fi
}
complete -F _ssmake ssmake
"""


def _options(parser: argparse.ArgumentParser) -> list[str]:
    # argparse keeps its actions private; shtab and argcomplete read them the same way.
    return [o for action in parser._actions for o in action.option_strings]


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _reply(compgen: str) -> str:
    return f'COMPREPLY=($(compgen {compgen} -- "$cur")); return ;;'


def bash_script(parser: argparse.ArgumentParser) -> str:
    """The bash completion of `parser`, the ssmake command line."""
    commands = _commands(parser)
    prev = [f"        {o}) " + _reply(kind) for o, kind in _PATHS.items()]
    seen = set(_PATHS)
    for sub in commands.values():
        for action in sub._actions:
            for option in action.option_strings:
                if action.choices and option not in seen:
                    seen.add(option)
                    words = " ".join(map(str, action.choices))
                    prev.append(f"        {option}) " + _reply(f'-W "{words}"'))
    run = " ".join(_options(commands["run"]))
    top = " ".join(dict.fromkeys(_options(parser) + _options(commands["run"])))
    cases = [f'        "") opts="{top}"; values="$(_ssmake_tasks) {" ".join(commands)}" ;;']
    for name, sub in commands.items():
        values = "$(_ssmake_tasks)" if name in _TASK_ARGS else ""
        for action in sub._actions:
            if action.choices and not action.option_strings:
                values = " ".join(map(str, action.choices))
        cases.append(f'        {name}) opts="{" ".join(_options(sub))}"; values="{values}" ;;')
    cases.append(f'        *) opts="{run}"; values="$(_ssmake_tasks)" ;;')
    return SCRIPT % {"prev": "\n".join(prev), "commands": "\n".join(cases)}


def run(args: argparse.Namespace) -> int:
    script = bash_script(args.parser)
    if args.shell == "zsh":
        # zsh runs bash completion functions through bashcompinit.
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    print(script, end="")
    return EXIT_OK
