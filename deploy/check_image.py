"""Check deploy/Dockerfile without a Docker engine.

    python deploy/check_image.py              # static checks (fast, offline)
    python deploy/check_image.py --simulate   # also replay the build stage's `uv sync` steps

Static checks: every COPY source exists in the build context and gets through .dockerignore;
`COPY --from` names an earlier stage and a path that stage produced; the `uv sync` steps are
locked (`--frozen`), without dev dependencies and not editable; the runtime stage has no uv and
no package installs, runs as a numeric non-root user, has the virtualenv on PATH, uses the same
Python image as the build stage, exposes the services' ports; the ENTRYPOINT is the
`sns-telegram` console script, whose module and function exist, and the CLI has the subcommands
the compose file and the manifests run.

`--simulate` copies the build context (filtered through .dockerignore) to a temporary directory,
runs the build stage's COPY and `uv sync` instructions there with the stage's ENV (container paths
mapped into the temporary directory), then runs the ENTRYPOINT from the resulting virtualenv,
outside the source tree, and imports every service from it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SERVICE_PORTS = {"linker": 8000, "scheduler": 8001, "notifier": 8002}
SUBCOMMANDS = {"migrate", "notifier", "linker", "scheduler"}
SERVICE_MODULES = [
    "services.cli",
    "services.notifier.main",
    "services.linker.main",
    "services.scheduler.main",
    "services.standin.__main__",
    "shared.db",
]


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str

    def flags_and_rest(self) -> tuple[dict[str, str], str]:
        """Leading `--name=value` flags (COPY --from=..., RUN --mount=...) and the rest."""
        flags: dict[str, str] = {}
        rest = self.args
        while match := re.match(r"--([a-z-]+)(?:=(\S+))?\s+", rest):
            flags[match.group(1)] = match.group(2) or ""
            rest = rest[match.end() :]
        return flags, rest


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The stage's ENV values (`ENV A=1 B=2` form), in order."""
        values: dict[str, str] = {}
        for ins in self.of("ENV"):
            for token in shlex.split(ins.args):
                name, _, value = token.partition("=")
                values[name] = value
        return values

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile: continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker too
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    for number, line in logical:
        keyword, _, args = line.partition(" ")
        ins = Instruction(number, keyword.upper(), args.strip())
        if ins.keyword == "FROM":
            parts = ins.args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append(ins)
    return stages


def exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form instruction, or None for the shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


# --- .dockerignore ------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.find("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


class DockerIgnore:
    """Docker's .dockerignore rules: the last matching pattern wins, `!` re-includes, and a
    pattern that matches a directory matches everything under it."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            self.rules.append((include, _pattern_regex(pattern)))

    def excluded(self, relative: str) -> bool:
        parts = relative.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        verdict = False
        for include, regex in self.rules:
            if any(regex.match(c) for c in candidates):
                verdict = not include
        return verdict


def context_files(ignore: DockerIgnore) -> Iterator[str]:
    """Every file of the build context (the repository root) that .dockerignore lets through."""
    for directory, dirs, files in os.walk(ROOT):
        rel_dir = os.path.relpath(directory, ROOT)
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not ignore.excluded(rel):
                yield rel


# --- static checks ------------------------------------------------------------------------------


def check(stages: list[Stage], ignore: DockerIgnore) -> list[str]:
    """Every problem found, as `Dockerfile:LINE: message`."""
    problems: list[str] = []
    sent = set(context_files(ignore))
    names = [s.name for s in stages]
    build_stages = stages[:-1]
    runtime = stages[-1]

    def problem(ins: Instruction | None, message: str) -> None:
        problems.append(f"deploy/Dockerfile:{ins.line if ins else 0}: {message}")

    for index, stage in enumerate(stages):
        for ins in stage.of("ADD"):
            problem(ins, "use COPY, not ADD")
        for ins in stage.of("COPY"):
            flags, rest = ins.flags_and_rest()
            parts = exec_form(rest) or rest.split()
            sources = parts[:-1]
            if "from" in flags:
                origin = flags["from"]
                if origin not in names[:index]:
                    problem(ins, f"COPY --from={origin}: no earlier stage of that name")
                    continue
                source_stage = stages[names.index(origin)]
                if source_stage.instructions:  # a stage we build: it must produce the path
                    made = {v for k, v in source_stage.env().items() if k.endswith("ENVIRONMENT")}
                    for src in sources:
                        if src not in made:
                            problem(ins, f"COPY --from={origin} {src}: not produced there")
                continue
            for src in sources:
                path = ROOT / src
                if not path.exists():
                    problem(ins, f"COPY source {src} does not exist in the build context")
                    continue
                prefix = src.rstrip("/").lstrip("./")
                if path.is_file() and prefix not in sent:
                    problem(ins, f"COPY source {src} is excluded by .dockerignore")
                if path.is_dir() and not any(f.startswith(prefix + "/") for f in sent):
                    problem(ins, f"COPY source {src}/ is empty after .dockerignore")
        for ins in stage.of("RUN"):
            _, command = ins.flags_and_rest()
            if "uv sync" in command:
                for flag in ("--frozen", "--no-dev", "--no-editable"):
                    if flag not in command.split():
                        problem(ins, f"`uv sync` without {flag}")

    if any(s.image.endswith(":latest") or ":" not in s.image for s in stages):
        problem(None, "every FROM needs an explicit tag")
    python_images = {s.image for s in stages if s.image.startswith("python:")}
    if len(python_images) != 1:
        problem(None, f"build and runtime must use one Python image, not {sorted(python_images)}")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low = re.search(r">=\s*(\d+\.\d+)", requires)
    for image in python_images:
        if low and not image.startswith(f"python:{low.group(1)}"):
            problem(None, f"{image} is not the lowest Python of requires-python ({requires})")

    # The runtime stage: only the virtualenv from the build, no uv, no installs, not root.
    for ins in runtime.of("COPY"):
        flags, rest = ins.flags_and_rest()
        if flags.get("from") != (build_stages[-1].name if build_stages else None):
            problem(ins, "the runtime stage copies only from the build stage")
        sources = (exec_form(rest) or rest.split())[:-1]
        if any(Path(src).name in ("uv", "uvx") for src in sources):
            problem(ins, "uv must not be in the runtime stage")
    for ins in runtime.of("RUN"):
        if re.search(r"\b(apt-get|apt|pip|uv)\s+(install|sync)", ins.args):
            problem(ins, "no package installs in the runtime stage")
    users = runtime.of("USER")
    uid = users[-1].args.split(":")[0] if users else "0"
    if not uid.isdigit() or uid == "0":
        problem(
            users[-1] if users else None, "the runtime stage must end as a numeric non-root USER"
        )
    venvs = {v for s in build_stages for k, v in s.env().items() if k == "UV_PROJECT_ENVIRONMENT"}
    search_path = runtime.env().get("PATH", "")
    if not any(search_path.startswith(f"{v}/bin:") for v in venvs):
        problem(None, f"runtime PATH must start with the virtualenv's bin ({sorted(venvs)})")
    exposed = {int(p.split("/")[0]) for i in runtime.of("EXPOSE") for p in i.args.split()}
    if missing := set(SERVICE_PORTS.values()) - exposed:
        problem(None, f"EXPOSE lacks {sorted(missing)}")

    entry = runtime.of("ENTRYPOINT")
    argv = exec_form(entry[-1].args) if entry else None
    if argv != ["sns-telegram"]:
        problem(entry[-1] if entry else None, 'ENTRYPOINT must be ["sns-telegram"] (exec form)')
    problems.extend(check_entrypoint("sns-telegram"))
    return problems


def check_entrypoint(script: str) -> list[str]:
    """The console script exists in pyproject, its module is packaged, its function and the
    service subcommands exist."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = pyproject["project"].get("scripts", {}).get(script)
    if target is None:
        return [f"pyproject.toml: [project.scripts] has no {script}"]
    module, _, function = target.partition(":")
    problems = []
    file = ROOT / (module.replace(".", "/") + ".py")
    if not file.exists():
        problems.append(f"{script} = {target}: {file.relative_to(ROOT)} does not exist")
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    if module.split(".")[0] not in packages:
        problems.append(f"{script} = {target}: {module} is not in the wheel ({packages})")
    sys.path.insert(0, str(ROOT))
    try:
        imported = __import__(module, fromlist=[function])
        if not callable(getattr(imported, function, None)):
            problems.append(f"{script} = {target}: {module} has no function {function}")
        parser = imported.build_parser()
        subparsers = next(a for a in parser._actions if a.choices)  # argparse keeps no public API
        if missing := SUBCOMMANDS - set(subparsers.choices or {}):
            problems.append(f"{script} lacks the subcommands {sorted(missing)}")
    finally:
        sys.path.remove(str(ROOT))
    return problems


# --- the build stage, replayed ------------------------------------------------------------------


def simulate(stages: list[Stage], ignore: DockerIgnore) -> list[str]:
    """Replay the build stage's COPY and `uv sync` steps, then run the image's entry point."""
    uv = shutil.which("uv")
    if uv is None:
        return ["--simulate needs uv on PATH"]
    build, runtime = stages[-2], stages[-1]
    with tempfile.TemporaryDirectory(prefix="sns-image-") as tmp:
        root, context = Path(tmp) / "root", Path(tmp) / "context"
        for rel in context_files(ignore):
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, context / rel)

        def mapped(container_path: str, workdir: Path) -> Path:
            path = Path(container_path)
            return root / path.relative_to("/") if path.is_absolute() else workdir / path

        env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
        workdir = root
        for ins in build.instructions:
            if ins.keyword == "ENV":
                for name, value in Stage("", None, [ins]).env().items():
                    env[name] = str(mapped(value, workdir)) if value.startswith("/") else value
            elif ins.keyword == "WORKDIR":
                workdir = mapped(ins.args, workdir)
                workdir.mkdir(parents=True, exist_ok=True)
            elif ins.keyword == "COPY":
                flags, rest = ins.flags_and_rest()
                if "from" in flags:
                    continue  # uv itself: ours is on PATH
                *sources, dest = exec_form(rest) or rest.split()
                target = mapped(dest, workdir)
                for src in sources:
                    copy_into(context / src, target, many=len(sources) > 1 or dest.endswith("/"))
            elif ins.keyword == "RUN":
                _, command = ins.flags_and_rest()
                if not command.startswith("uv "):
                    continue
                argv = [uv, "--quiet", *shlex.split(command)[1:]]
                print(f"  simulate: {command}  (Dockerfile:{ins.line})", flush=True)
                done = subprocess.run(argv, cwd=workdir, env=env, check=False)  # noqa: S603
                if done.returncode != 0:
                    return [f"deploy/Dockerfile:{ins.line}: `{command}` failed"]
        venv_value = build.env()["UV_PROJECT_ENVIRONMENT"]
        return run_image(mapped(venv_value, root), runtime, Path(tmp))


def copy_into(source: Path, target: Path, *, many: bool) -> None:
    """Docker's COPY: a directory's contents into target; a file into target (a directory when
    target ends with / or there are several sources)."""
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        destination = target / source.name if many or target.is_dir() else target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def run_image(venv: Path, runtime: Stage, elsewhere: Path) -> list[str]:
    """Run the ENTRYPOINT and import every service from the virtualenv, away from the source."""
    problems = []
    entry = exec_form(runtime.of("ENTRYPOINT")[-1].args) or []
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(elsewhere)}
    neutral = elsewhere / "cwd"
    neutral.mkdir()

    def failed(argv: list[str]) -> str | None:
        """Run `argv` from the virtualenv's bin, away from the source; the end of its stderr if
        it failed, else None."""
        done = subprocess.run(  # noqa: S603
            [str(venv / "bin" / argv[0]), *argv[1:]],
            cwd=neutral,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        return tail(done.stderr) if done.returncode != 0 else None

    for argv in ([*entry, "--help"], [*entry, "migrate", "--help"]):
        if (error := failed(argv)) is not None:
            problems.append(f"`{' '.join(argv)}` in the image failed:\n{error}")
    probe = (
        "import importlib, pathlib, sys\n"
        f"for name in {SERVICE_MODULES!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert '/site-packages/' in module.__file__, (name, module.__file__)\n"
        "from shared.db import MIGRATIONS_DIR\n"
        "assert (MIGRATIONS_DIR / 'env.py').exists(), 'alembic env.py is not in the wheel'\n"
        "assert list((MIGRATIONS_DIR / 'versions').glob('*.py')), 'no migrations in the wheel'\n"
        "import services.standin.server as s\n"
        "assert (pathlib.Path(s.__file__).parent / 'static' / 'index.html').exists()\n"
        "import importlib.util\n"
        "dev = [m for m in ('pytest', 'ruff', 'mypy') if importlib.util.find_spec(m)]\n"
        "assert not dev, f'dev dependencies in the image: {dev}'\n"
    )
    if (error := failed(["python", "-c", probe])) is not None:
        problems.append(f"the image's virtualenv is incomplete:\n{error}")
    return problems


def tail(text: str, lines: int = 12) -> str:
    """The end of a traceback: where it failed and why."""
    return "\n".join(text.strip().splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    """Run the checks; print each problem; exit 1 if there is any."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulate", action="store_true", help="replay the build stage with uv")
    args = parser.parse_args(argv)
    stages = parse_dockerfile(DOCKERFILE.read_text())
    ignore = DockerIgnore(DOCKERIGNORE.read_text())
    problems = check(stages, ignore)
    if not problems and args.simulate:
        problems = simulate(stages, ignore)
    for line in problems:
        print(f"ERROR {line}", file=sys.stderr)
    if not problems:
        what = "static checks and simulated build" if args.simulate else "static checks"
        print(f"deploy/Dockerfile: {what} passed ({len(stages)} stages)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
