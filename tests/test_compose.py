"""docker-compose.yml, the Dockerfile it builds and .dockerignore, checked without Docker.

Docker cannot run on the development machines, so these tests read the files and hold
them to the code they deploy: every ``RAG_*`` variable is a real ``Settings`` field and
its value validates, every ``rag`` command line parses with the real CLI, URLs point at
the services that serve them, the image pins what the Makefile pins, and the ingestion
worker's shell loop is run here with a stand-in ``rag``. Where a Docker Compose v2 CLI
is installed, ``docker compose config`` checks the file as Docker would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.main import get_command
from typer.testing import CliRunner

from rag.cli import app as cli_app
from rag.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
EXPECTED_SERVICES = ("app", "ingest", "postgres", "vllm")
#: Read from the environment outside ``Settings`` (rag/config.py: the TOML file's path).
RAG_VARIABLES_OUTSIDE_SETTINGS = frozenset({"RAG_CONFIG"})
#: In the Makefile's APT_PACKAGES for tests only: the end-to-end browser test (chromium,
#: CJK fonts for its screenshots) and the throwaway PostgreSQL of the catalog tests.
TEST_ONLY_PACKAGES = frozenset({"chromium", "fonts-noto-cjk", "postgresql"})
#: Host variables overridden all at once, to show that related values move together.
OVERRIDES = {
    "POSTGRES_USER": "alice",
    "POSTGRES_PASSWORD": "p@ss/w:rd",
    "POSTGRES_DB": "handbooks",
    "RAG_GENERATOR": "openai",
    "RAG_GENERATOR_MODEL": "example-org/other-model",
    "UI_PORT": "9000",
}


# -- reading the files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_]\w*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Substitute ``${VAR:-default}`` and friends as Docker Compose does, from ``env``."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        braced = _BRACED.fullmatch(match.group("braced"))
        if braced is None:
            raise ValueError(f"unsupported interpolation {match.group(0)!r} in {value!r}")
        name, op, arg = braced.group("name", "op", "arg")
        current = env.get(name)
        set_and_nonempty = bool(current)
        is_set = current is not None
        if op is None:
            return current or ""
        if op in (":-", "-"):
            use_default = not set_and_nonempty if op == ":-" else not is_set
            return arg if use_default else (current or "")
        if op in (":?", "?"):
            missing = not set_and_nonempty if op == ":?" else not is_set
            if missing:
                raise ValueError(f"{name} is required: {arg}")
            return current or ""
        replaced = set_and_nonempty if op == ":+" else is_set
        return arg if replaced else ""

    return _VARIABLE.sub(replace, value)


def resolved(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` with every string interpolated, as ``docker compose config`` shows it."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolved(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolved(value, env) for key, value in node.items()}
    return node


def environment(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """A service's container environment (mapping or ``KEY=VALUE`` list form)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    else:
        pairs = {key: "" if value is None else str(value) for key, value in raw.items()}
    return {key: interpolate(value, env) for key, value in pairs.items()}


def option_value(command: list[str], option: str) -> str | None:
    """The value after ``option`` in an argument list, or None."""
    for index, token in enumerate(command[:-1]):
        if token == option:
            return command[index + 1]
    return None


def shell_script(service: Mapping[str, Any]) -> str | None:
    """The script of a ``sh -c SCRIPT`` command, with Compose's ``$$`` unescaped."""
    command = service.get("command")
    if not isinstance(command, list) or len(command) != 3 or command[1] != "-c":
        return None
    if command[0] not in ("sh", "/bin/sh", "bash", "/bin/bash"):
        return None
    return interpolate(command[2], {})


def healthcheck_shell(service: Mapping[str, Any]) -> str:
    """A ``CMD-SHELL`` health check's command line."""
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return interpolate(test, {})
    assert test[0] == "CMD-SHELL", f"expected a CMD-SHELL health check, got {test!r}"
    return interpolate(test[1], {})


def healthcheck_text(service: Mapping[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


# -- services, volumes, dependencies, health ---------------------------------------------


def test_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    missing = [name for name in EXPECTED_SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks services {missing}"


def test_every_build_points_at_an_existing_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert {"app", "ingest"} <= set(built)
    for name, build in built.items():
        if isinstance(build, str):
            build = {"context": build}
        context = (REPO_ROOT / build.get("context", ".")).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"


def test_app_and_ingest_run_one_image(services: dict[str, dict[str, Any]]) -> None:
    assert services["app"]["image"] == services["ingest"]["image"]
    assert services["app"]["build"] == services["ingest"]["build"]


def _named_volumes(service: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(volume name, container path) of the named volumes a service mounts."""
    for mount in service.get("volumes") or []:
        if isinstance(mount, dict):
            if mount.get("type", "volume") == "volume" and mount.get("source"):
                yield mount["source"], mount["target"]
            continue
        source, _, rest = mount.partition(":")
        if rest and not source.startswith((".", "/", "~", "$")):
            yield source, rest.split(":")[0]


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {name for service in compose["services"].values() for name, _ in _named_volumes(service)}
    assert used <= declared, f"volumes used but not declared: {sorted(used - declared)}"
    assert declared <= used, f"volumes declared but never mounted: {sorted(declared - used)}"


def test_app_and_ingest_share_the_rag_home_volume(services: dict[str, dict[str, Any]]) -> None:
    mounts = {}
    for name in ("app", "ingest"):
        home = environment(services[name], {})["RAG_HOME"]
        by_path = {target: volume for volume, target in _named_volumes(services[name])}
        assert home in by_path, f"{name}: RAG_HOME {home} is not on a named volume"
        mounts[name] = (by_path[home], home)
    assert mounts["app"] == mounts["ingest"]


def test_depends_on_waits_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target!r}"
            if "healthcheck" in services[target]:
                assert spec.get("condition") == "service_healthy", (
                    f"{name} must wait for {target} to be healthy, not {spec!r}"
                )
    assert "postgres" in services["app"]["depends_on"]
    assert "postgres" in services["ingest"]["depends_on"]


def test_every_service_has_a_health_check(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        test = check.get("test")
        assert test and test != ["NONE"], f"{name}'s healthcheck has no test"


# -- settings ----------------------------------------------------------------------------


def _rag_variables(services: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, str]]:
    for name, service in services.items():
        for key in environment(service, {}):
            if key.startswith("RAG_"):
                yield name, key


def test_every_rag_variable_is_a_settings_field(services: dict[str, dict[str, Any]]) -> None:
    fields = set(Settings.model_fields)
    unknown = [
        f"{service}: {key}"
        for service, key in _rag_variables(services)
        if key not in RAG_VARIABLES_OUTSIDE_SETTINGS and key[4:].lower() not in fields
    ]
    # Settings ignores an unknown RAG_* variable in the environment: a typo here would
    # be silently without effect, hence this check.
    assert not unknown, f"not fields of rag.config.Settings: {unknown}"


@pytest.mark.parametrize("env", [{}, OVERRIDES], ids=["defaults", "overridden"])
@pytest.mark.parametrize("service", ["app", "ingest"])
def test_the_rag_environment_validates_as_settings(
    services: dict[str, dict[str, Any]],
    service: str,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = environment(services[service], env)
    for key, value in values.items():
        if key.startswith("RAG_"):
            monkeypatch.setenv(key, value)
    settings = Settings()  # reads them exactly as the container's `rag` does
    assert str(settings.home) == values["RAG_HOME"]
    assert settings.generator == (env.get("RAG_GENERATOR") or "embedded")


def test_the_default_generator_stays_embedded(services: dict[str, dict[str, Any]]) -> None:
    for name in ("app", "ingest"):
        assert environment(services[name], {})["RAG_GENERATOR"] == "embedded"


# -- the catalog -------------------------------------------------------------------------


@pytest.mark.parametrize("env", [{}, OVERRIDES], ids=["defaults", "overridden"])
def test_database_urls_point_at_the_postgres_service(
    services: dict[str, dict[str, Any]], env: dict[str, str]
) -> None:
    postgres = environment(services["postgres"], env)
    checked = []
    for name, service in services.items():
        values = environment(service, env)
        if "RAG_DATABASE_URL" not in values:
            continue
        url = make_url(values["RAG_DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg", f"{name}: {url.drivername}"
        assert url.host == "postgres" and url.port in (None, 5432), f"{name}: {url}"
        assert url.username == postgres["POSTGRES_USER"], name
        assert url.database == postgres["POSTGRES_DB"], name
        # In the URL or, for libpq, in PGPASSWORD: either way the one postgres was given.
        password = url.password if url.password is not None else values.get("PGPASSWORD")
        assert password == postgres["POSTGRES_PASSWORD"], name
        checked.append(name)
    assert {"app", "ingest"} <= set(checked)


def test_postgres_image_and_readiness_check(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    image, _, tag = postgres["image"].partition(":")
    assert image == "postgres" and int(tag.split(".")[0].split("-")[0]) >= 16
    assert "pg_isready" in healthcheck_text(postgres)
    assert any(target.startswith("/var/lib/postgresql") for _, target in _named_volumes(postgres))


# -- vLLM --------------------------------------------------------------------------------


def test_vllm_is_optional_and_reserves_a_gpu(services: dict[str, dict[str, Any]]) -> None:
    vllm = resolved(services["vllm"], {})
    assert vllm.get("profiles") == ["vllm"]
    assert vllm["image"].split(":")[0].endswith("vllm/vllm-openai")
    in_profiles = [name for name, s in services.items() if s.get("profiles") and name != "vllm"]
    assert not in_profiles, f"only vllm is optional; also behind a profile: {in_profiles}"
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device.get("capabilities", []) for device in devices)
    assert "/health" in healthcheck_text(vllm)
    for name, service in services.items():
        assert "vllm" not in (service.get("depends_on") or {}), (
            f"{name} must start without the optional vllm service"
        )


@pytest.mark.parametrize("env", [{}, OVERRIDES], ids=["defaults", "overridden"])
def test_openai_settings_point_at_the_vllm_service(
    services: dict[str, dict[str, Any]], env: dict[str, str]
) -> None:
    command = resolved(services["vllm"]["command"], env)
    port = option_value(command, "--port") or "8000"
    served = option_value(command, "--served-model-name") or option_value(command, "--model")
    assert option_value(command, "--host") == "0.0.0.0"
    assert f":{port}/health" in healthcheck_text(services["vllm"])
    for name in ("app", "ingest"):
        values = environment(services[name], env)
        if "RAG_OPENAI_BASE_URL" not in values:
            continue
        base = urlsplit(values["RAG_OPENAI_BASE_URL"])
        assert (base.scheme, base.hostname, str(base.port), base.path.rstrip("/")) == (
            "http",
            "vllm",
            port,
            "/v1",
        ), f"{name}: {values['RAG_OPENAI_BASE_URL']}"
        assert values["RAG_GENERATOR_MODEL"] == served, f"{name} asks for a model vllm lacks"


# -- `rag` command lines -----------------------------------------------------------------


def _script_assignments(script: str) -> dict[str, list[str]]:
    """Every value a shell variable is given in ``script`` (``name=value``)."""
    found: dict[str, list[str]] = {}
    for match in re.finditer(r"(?<![\w$])([A-Za-z_]\w*)=(\S*?)(?=\s|;|$)", script, re.M):
        found.setdefault(match.group(1), []).append(match.group(2))
    return found


def _expand(token: str, env: Mapping[str, str], assignments: Mapping[str, list[str]]) -> list[str]:
    """A command token with its shell variable expanded (a flag variable: its non-empty value)."""
    match = re.fullmatch(r"\$\{?([A-Za-z_]\w*)\}?", token)
    if match is None:
        return [token]
    name = match.group(1)
    if name in env:
        return [env[name]]
    values = [value for value in assignments.get(name, []) if value]
    assert values, f"cannot tell what ${name} holds"
    return [part for value in values for part in shlex.split(value)]


def rag_invocations(services: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """(service, argv after ``rag``) of every ``rag`` command the compose file runs."""
    found = []
    for name, service in services.items():
        command = service.get("command")
        if isinstance(command, list) and command and command[0] == "rag":
            found.append((name, list(command[1:])))
        script = shell_script(service)
        if script is None:
            continue
        env = environment(service, {})
        assignments = _script_assignments(script)
        for line in script.splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens[:1] == ["exec"]:
                tokens = tokens[1:]
            if tokens[:1] != ["rag"]:
                continue
            argv: list[str] = []
            for token in tokens[1:]:
                if token in ("&", ";", "&&", "||", "|"):
                    break
                argv.extend(_expand(token, env, assignments))
            found.append((name, argv))
    return found


def _parse_cli(argv: list[str]) -> Any:
    """Parse ``argv`` with the real CLI's leaf command; returns its click context."""
    command: Any = get_command(cli_app)
    name, rest = "rag", list(argv)
    while hasattr(command, "commands"):  # a group: its own options, then a subcommand
        while rest and rest[0].startswith("-"):
            option = rest.pop(0)
            params = [p for p in command.params if option in p.opts]
            assert params, f"`rag` has no option {option}"
            if not params[0].is_flag:
                rest.pop(0)
        assert rest, f"`rag {' '.join(argv)}` names no command"
        name = rest.pop(0)
        assert name in command.commands, f"`rag` has no command {name!r}"
        command = command.commands[name]
    return command.make_context(name, rest)  # raises on unknown options or bad values


def test_compose_runs_real_rag_commands(services: dict[str, dict[str, Any]]) -> None:
    invocations = rag_invocations(services)
    assert {name for name, _ in invocations} == {"app", "ingest"}
    runner = CliRunner()
    for name, argv in invocations:
        result = runner.invoke(cli_app, [*argv, "--help"])
        assert result.exit_code == 0, f"{name}: rag {' '.join(argv)}\n{result.output}"
        _parse_cli(argv)


def test_the_app_serves_the_ui_on_the_published_port(
    services: dict[str, dict[str, Any]],
) -> None:
    app = services["app"]
    assert app["command"][:2] == ["rag", "ui"]
    params = _parse_cli(app["command"][1:]).params
    assert params["host"] == "0.0.0.0", "bound to loopback, the UI is unreachable from outside"
    published = []
    for port in resolved(app.get("ports") or [], OVERRIDES):
        if isinstance(port, dict):
            published.append(int(port["target"]))
        else:
            published.append(int(str(port).rsplit(":", 1)[-1].split("/")[0]))
    assert published and set(published) == {params["port"]}
    assert f":{params['port']}/_stcore/health" in healthcheck_text(app)


# -- the ingestion worker ----------------------------------------------------------------


def test_the_inbox_is_mounted_read_only(services: dict[str, dict[str, Any]]) -> None:
    ingest = services["ingest"]
    rag_args = [argv for name, argv in rag_invocations(services) if name == "ingest"]
    assert rag_args and rag_args[0][0] == "ingest"
    inbox = rag_args[0][1]
    mounts = [m for m in ingest["volumes"] if isinstance(m, dict) and m["target"] == inbox]
    short = [m for m in ingest["volumes"] if isinstance(m, str) and f":{inbox}" in m]
    assert mounts or short, f"nothing is mounted at {inbox}"
    for long_form in mounts:
        assert long_form["type"] == "bind" and long_form.get("read_only") is True, long_form
    for short_form in short:
        assert short_form.endswith(":ro"), f"writable: {short_form}"


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _fake_rag(tmp_path: Path, exit_codes: list[int]) -> tuple[dict[str, str], Path]:
    """A stand-in `rag` on PATH: logs its arguments, waits while ``hold.N`` exists (N: the
    call's number), exits with the codes in turn, then hangs like a long pass."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    cases = " ".join(f"{n}) exit {code} ;;" for n, code in enumerate(exit_codes, start=1))
    script = bin_dir / "rag"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {shlex.quote(str(calls))}\n'
        f"n=$(wc -l < {shlex.quote(str(calls))})\n"
        f'while [ -e {shlex.quote(str(tmp_path))}/hold."$n" ]; do sleep 0.05; done\n'
        f'case "$n" in {cases} *) exec sleep 60 ;; esac\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return env, calls


def _calls(calls: Path) -> list[str]:
    return calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []


@pytest.fixture
def worker(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> Iterator[Callable[..., tuple[subprocess.Popen[str], Path, Callable[[], int]]]]:
    """Starts the ingest service's own loop script with a stand-in `rag`."""
    ingest = services["ingest"]
    script = shell_script(ingest)
    health = healthcheck_shell(ingest)
    assert script is not None, "the ingest service is expected to run a `sh -c` loop"
    marker = re.search(r"/tmp/\S+", health)
    assert marker and marker.group(0) in script, "the health check reads the loop's marker"
    local_marker = str(tmp_path / "ingest.failed")
    script = script.replace(marker.group(0), local_marker)
    health = health.replace(marker.group(0), local_marker)
    started: list[subprocess.Popen[str]] = []

    def start(
        exit_codes: list[int], **overrides: str
    ) -> tuple[subprocess.Popen[str], Path, Callable[[], int]]:
        env, calls = _fake_rag(tmp_path, exit_codes)
        env.update(environment(ingest, {}))
        env["INGEST_INTERVAL"] = "1"
        env.update(overrides)
        # A session of its own, so that teardown can end the loop and its stand-in passes.
        process = subprocess.Popen(["sh", "-c", script], env=env, text=True, start_new_session=True)
        started.append(process)

        def healthy() -> int:
            return subprocess.run(["sh", "-c", health], capture_output=True).returncode

        return process, calls, healthy

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_the_ingest_worker_loops_reports_health_and_stops_promptly(
    worker: Callable[..., tuple[subprocess.Popen[str], Path, Callable[[], int]]],
    tmp_path: Path,
) -> None:
    # Pass 1 fails outright (exit 3: catalog unreachable), pass 2 lands with some files
    # failed (exit 1), pass 3 is still running when the container is stopped.
    hold = tmp_path / "hold.2"
    hold.touch()
    process, calls, healthy = worker([3, 1])
    _wait_for(lambda: len(_calls(calls)) >= 2, "the second pass")
    assert healthy() != 0, "a pass that failed outright marks the worker unhealthy"
    hold.unlink()
    _wait_for(lambda: healthy() == 0, "the second pass to clear the failure")
    _wait_for(lambda: len(_calls(calls)) >= 3, "the third pass")
    assert process.poll() is None, "the worker must keep running after failed passes"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0
    assert time.monotonic() - started < 3, "SIGTERM must end a running pass at once"
    assert set(_calls(calls)) == {"ingest /data/inbox --kb docs --prune"}


def test_the_ingest_worker_can_keep_documents_whose_files_left(
    worker: Callable[..., tuple[subprocess.Popen[str], Path, Callable[[], int]]],
) -> None:
    process, calls, _ = worker([], INGEST_PRUNE="false", INGEST_KB="manuals")
    _wait_for(lambda: len(_calls(calls)) >= 1, "the first pass")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0
    assert _calls(calls) == ["ingest /data/inbox --kb manuals"]


@pytest.mark.parametrize(
    "overrides",
    [{"INGEST_INTERVAL": "5m"}, {"INGEST_INTERVAL": "0"}, {"INGEST_PRUNE": "maybe"}],
    ids=["interval-with-unit", "interval-zero", "prune-not-a-boolean"],
)
def test_the_ingest_worker_refuses_bad_settings(
    worker: Callable[..., tuple[subprocess.Popen[str], Path, Callable[[], int]]],
    overrides: dict[str, str],
) -> None:
    process, calls, _ = worker([], **overrides)
    assert process.wait(timeout=5) == 2
    assert _calls(calls) == [], "no pass may run with a setting it would misread"


# -- the Dockerfile ----------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical = (pending + stripped).strip()
        pending = ""
        if logical:
            keyword, _, rest = logical.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1] :]


def _pins(text: str) -> dict[str, str]:
    return {
        name.lower(): version
        for name, version in re.findall(r"(?<![\w.-])([A-Za-z][\w.-]*)==([\w.+]+)", text)
    }


def _run_text(instructions: list[tuple[str, str]]) -> str:
    return "\n".join(rest for keyword, rest in instructions if keyword == "RUN")


def _makefile_recipe(target: str) -> str:
    """The recipe lines of a Makefile target and of the targets it depends on."""
    rules: dict[str, tuple[list[str], list[str]]] = {}
    current: list[str] | None = None
    for line in (REPO_ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        if line.startswith("\t") and current is not None:
            current.append(line.strip())
            continue
        rule = re.match(r"^([^\s#:=][^:=]*?)\s*:(?!=)\s*(.*)$", line)
        if rule:
            current = []
            rules[rule.group(1)] = (rule.group(2).split(), current)
        elif line.strip():
            current = None
    lines: list[str] = []
    pending, seen = [target], set()
    while pending:
        name = pending.pop(0)
        if name in seen or name not in rules:
            continue
        seen.add(name)
        prerequisites, recipe = rules[name]
        lines.extend(recipe)
        pending.extend(prerequisites)
    return "\n".join(lines)


def _makefile_setup() -> str:
    """The pip commands of `make setup`, which the image mirrors."""
    setup = _makefile_recipe("setup")
    assert setup, "the Makefile has no setup target"
    return "\n".join(line for line in setup.splitlines() if "pip install" in line)


def _build_args(instructions: list[tuple[str, str]]) -> dict[str, str]:
    args: dict[str, str] = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value.strip("'\"")
    return args


def test_dockerfile_pins_torch_as_the_constraints_do(dockerfile: list[tuple[str, str]]) -> None:
    constraints = (REPO_ROOT / "requirements" / "constraints.txt").read_text(encoding="utf-8")
    pinned = re.search(r"^torch==(\S+)$", constraints, re.M)
    assert pinned is not None, "requirements/constraints.txt pins no torch"
    assert _pins(_run_text(dockerfile)).get("torch") == pinned.group(1)


def test_dockerfile_installs_torch_from_the_cpu_index(dockerfile: list[tuple[str, str]]) -> None:
    torch_runs = [r for k, r in dockerfile if k == "RUN" and re.search(r"\btorch==", r)]
    assert len(torch_runs) == 1 and "--index-url" in torch_runs[0]
    index = torch_runs[0].split("--index-url", 1)[1].split()[0].strip("'\"")
    index = interpolate(index, _build_args(dockerfile))
    assert index == "https://download.pytorch.org/whl/cpu"


def test_dockerfile_mirrors_the_makefile_setup(dockerfile: list[tuple[str, str]]) -> None:
    makefile_pins = _pins(_makefile_setup())
    docker_pins = _pins(_run_text(dockerfile))
    assert makefile_pins, "the Makefile's setup target pins nothing?"
    differing = {
        name: (version, docker_pins.get(name))
        for name, version in makefile_pins.items()
        if docker_pins.get(name) != version
    }
    assert not differing, f"(Makefile, Dockerfile) pins differ: {differing}"
    runs = _run_text(dockerfile)
    assert "-c requirements/constraints.txt" in runs
    no_deps = re.findall(r"--no-deps\s+((?:[\w.-]+==[\w.]+\s*)+)", _makefile_setup())
    for group in no_deps:
        for pin in group.split():
            assert re.search(rf"--no-deps\s[^\n]*{re.escape(pin)}", runs), (
                f"{pin} must be installed with --no-deps, as the Makefile does"
            )


def test_dockerfile_installs_the_postgres_driver(dockerfile: list[tuple[str, str]]) -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    optional = pyproject["project"].get("optional-dependencies", {})
    extras = [e for e in _build_args(dockerfile).get("EXTRAS", "").split(",") if e]
    unknown = [extra for extra in extras if extra not in optional]
    assert not unknown, f"the image's default EXTRAS name no pyproject.toml extra: {unknown}"
    installed = [dep for extra in extras for dep in optional[extra]]
    installed.append(_run_text(dockerfile))
    # RAG_DATABASE_URL=postgresql+psycopg://... needs psycopg 3 with its libpq.
    assert any("psycopg[binary]" in text for text in installed), "no PostgreSQL driver"


def test_dockerfile_installs_the_makefiles_debian_packages(
    dockerfile: list[tuple[str, str]],
) -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    declared = re.search(r"^APT_PACKAGES\s*:?=\s*(.+)$", makefile, re.M)
    assert declared is not None
    wanted = set(declared.group(1).split()) - TEST_ONLY_PACKAGES
    installed = set(_run_text(final_stage(dockerfile)).split())
    assert wanted <= installed, f"missing from the runtime image: {sorted(wanted - installed)}"
    assert not TEST_ONLY_PACKAGES & installed, "packages only the tests need"


def test_dockerfile_runs_offline_as_a_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    base = [rest for keyword, rest in dockerfile if keyword in ("FROM", "ARG")]
    assert any("python:3.11" in line for line in base), "python:3.11 base image"
    stage = final_stage(dockerfile)
    users = [rest.split(":")[0] for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            env.update(token.partition("=")[::2] for token in shlex.split(rest))
    assert env.get("HF_HUB_OFFLINE") == "1"
    cmd = [json.loads(rest) for keyword, rest in stage if keyword == "CMD"]
    assert cmd and cmd[-1][:2] == ["rag", "ui"]
    exposed = [rest for keyword, rest in stage if keyword == "EXPOSE"]
    assert exposed == [str(_parse_cli(cmd[-1][1:]).params["port"])]


def test_dockerfile_copies_every_package(dockerfile: list[tuple[str, str]]) -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in included}
    copied = set(_copy_sources(dockerfile))
    assert packages <= copied, f"packages the image would lack: {sorted(packages - copied)}"


def test_the_wheel_ships_every_non_python_file() -> None:
    # The image installs the project as a wheel, not editable: a data file that
    # [tool.setuptools.package-data] does not name is missing at run time.
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools_cfg = pyproject["tool"]["setuptools"]
    package_data: dict[str, list[str]] = setuptools_cfg.get("package-data", {})
    roots = [
        REPO_ROOT / pattern.rstrip("*").rstrip(".")
        for pattern in setuptools_cfg["packages"]["find"]["include"]
    ]
    shipped: set[Path] = set()
    for package, patterns in package_data.items():
        folders = (
            [p.parent for root in roots for p in root.rglob("__init__.py")]
            if package in ("", "*")
            else [REPO_ROOT / package.replace(".", "/")]
        )
        for folder in folders:
            for pattern in patterns:
                shipped.update(folder.glob(pattern))
    data_files = {
        path
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    missing = sorted(str(path.relative_to(REPO_ROOT)) for path in data_files - shipped)
    assert not missing, (
        f"pyproject.toml's [tool.setuptools.package-data] does not ship {missing}; "
        'add their globs (for rag/prompts: "prompts/*/*.txt" under rag)'
    )


# -- .dockerignore -----------------------------------------------------------------------


def _copy_sources(instructions: list[tuple[str, str]]) -> list[str]:
    """Build-context paths the Dockerfile's COPY instructions read."""
    sources: list[str] = []
    for keyword, rest in instructions:
        if keyword not in ("COPY", "ADD"):
            continue
        tokens = shlex.split(rest)
        if any(token.startswith("--from") for token in tokens):
            continue
        paths = [token for token in tokens if not token.startswith("--")]
        sources.extend(path.rstrip("/") for path in paths[:-1])
    return sources


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go's filepath.Match plus ``**``) as a regular expression."""
    out, index = "", 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif char == "*":
            out, index = out + "[^/]*", index + 1
        elif char == "?":
            out, index = out + "[^/]", index + 1
        elif char == "[":
            end = pattern.index("]", index + 1)
            body = pattern[index + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]"
            index = end + 1
        else:
            out, index = out + re.escape(char), index + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last match wins; a
    pattern that matches a parent folder matches everything in it)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in patterns:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


@pytest.fixture(scope="module")
def ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        body = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        patterns.append((negated, _dockerignore_regex(body)))
    return patterns


def test_dockerignore_lets_through_what_the_dockerfile_copies(
    dockerfile: list[tuple[str, str]], ignore_patterns: list[tuple[bool, re.Pattern[str]]]
) -> None:
    sources = _copy_sources(dockerfile)
    assert "README.md" in sources, "pyproject.toml's readme must be in the context"
    blocked = []
    for source in sources:
        path = REPO_ROOT / source
        assert path.exists(), f"COPY {source}: no such file in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(REPO_ROOT).as_posix()
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            if dockerignored(relative, ignore_patterns):
                blocked.append(relative)
    assert not blocked, f".dockerignore keeps out files the image needs: {blocked[:10]}"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/config",
        ".env",
        ".rag-demo/catalog.sqlite3",
        "tests/conftest.py",
        "rag/__pycache__/cli.cpython-311.pyc",
        "rag_platform.egg-info/PKG-INFO",
    ],
)
def test_dockerignore_keeps_local_state_out(
    path: str, ignore_patterns: list[tuple[bool, re.Pattern[str]]]
) -> None:
    assert dockerignored(path, ignore_patterns)


# -- Docker itself, where installed ------------------------------------------------------


def _compose_cli() -> tuple[list[str] | None, str]:
    """The Docker Compose v2 command line, or None and why there is none."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0:
            return [docker, "compose"], ""
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        probe = subprocess.run(
            [standalone, "version", "--short"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").startswith("2"):
            return [standalone], ""
    if docker is not None:
        return None, "docker is installed without its compose plugin (`docker compose`)"
    return None, "Docker is not installed here; the tests above check the file without it"


@pytest.mark.parametrize("profiles", [[], ["--profile", "vllm"]], ids=["default", "vllm"])
def test_docker_compose_config_accepts_the_file(profiles: list[str]) -> None:
    cli, reason = _compose_cli()
    if cli is None:
        pytest.skip(reason)
    result = subprocess.run(
        [*cli, "--file", str(COMPOSE_FILE), *profiles, "config", "--quiet"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
