"""The deployment files (Dockerfile, docker-compose.yml and its overrides compose.cpu.yml and
compose.multihost.yml, compose.node.yml for a node on another host) checked without a Docker
engine: the compose files against the Compose Specification's JSON schema (the copy
that check-jsonschema ships), every command against the real `nas` and `ray` command lines,
every variable against what the code reads, and the wiring between the services."""

import copy
import importlib.resources
import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import jsonschema
import pytest
import typer.main
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nas", "searchspace", "server", "workers")
RAY_NODES = ("ray-head", "ray-worker")
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")


class Reset:
    """Compose's `!reset` tag: the override removes the key."""


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it: merge keys, plus its `!reset` and `!override` tags."""


ComposeLoader.add_constructor("!reset", lambda loader, node: Reset())
ComposeLoader.add_constructor(
    "!override", lambda loader, node: {"__override__": loader.construct_object(node, deep=True)})


def load(name: str) -> dict:
    return yaml.load((ROOT / name).read_text(), Loader=ComposeLoader)  # noqa: S506


def merge(base, override):
    """Compose's merge of an override file, as far as these files use it: mappings merge key
    by key, `!reset` removes a key, anything else replaces."""
    if isinstance(override, dict) and "__override__" in override:
        return copy.deepcopy(override["__override__"])
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Reset):
            merged.pop(key, None)
        else:
            merged[key] = merge(base.get(key), value) if key in base else merge(None, value)
    return merged


def without_tags(value):
    """The file as the schema sees it once Compose applied its tags."""
    if isinstance(value, dict):
        return {key: without_tags(item) for key, item in value.items()
                if not isinstance(item, Reset)}
    if isinstance(value, list):
        return [without_tags(item) for item in value]
    return value


BASE = load("docker-compose.yml")
CPU = merge(BASE, load("compose.cpu.yml"))
VARIANTS = {"gpu": BASE, "cpu": CPU}
# Across hosts: the head host's override (over either variant) and a node on another host.
MULTIHOST = {"multihost": merge(BASE, load("compose.multihost.yml")),
             "multihost-cpu": merge(CPU, load("compose.multihost.yml"))}
NODE = load("compose.node.yml")
EVERY = VARIANTS | MULTIHOST | {"node": NODE}
COMPOSE_FILES = ["docker-compose.yml", "compose.cpu.yml", "compose.multihost.yml",
                 "compose.node.yml"]
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_]+)(?P<rule>:?[-?])?")


def schema_validator():
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def errors_of(document) -> list[str]:
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
            for error in schema_validator().iter_errors(document)]


def services(variant="gpu") -> dict:
    return EVERY[variant]["services"]


def environment(service: dict) -> dict:
    return service.get("environment") or {}


def command_lines(argv: list[str]) -> list[list[str]]:
    """The programs an exec-form command runs: itself, or each step of an `sh -c` script."""
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(step.removeprefix(" ").removeprefix("exec "))
                for step in argv[2].split("&&")]
    return [argv]


def usage_errors() -> tuple[type[Exception], ...]:
    """click's, and those of the click that recent typer releases carry inside."""
    try:
        from typer._click.exceptions import UsageError
    except ImportError:
        return (click.UsageError,)
    return (click.UsageError, UsageError)


def parse_cli(group, argv: list[str]):
    """Parse `argv` with a click (or typer) command line as its program would, without
    running it: an unknown command or option, or a bad value, raises a usage error."""
    command, name = group, argv[0]
    argv = argv[1:]
    while hasattr(command, "list_commands"):  # a group: descend to the subcommand
        assert argv and not argv[0].startswith("-"), f"{name}: no subcommand in {argv}"
        sub = command.get_command(command.context_class(command), argv[0])
        if sub is None:
            raise click.UsageError(f"{name} has no command {argv[0]!r}")
        command, name, argv = sub, f"{name} {argv[0]}", argv[1:]
    return command.make_context(name, list(argv))


def nas_cli():
    from nas.cli import load_app

    return typer.main.get_command(load_app())


def ray_cli() -> click.Group:
    from ray.scripts.scripts import cli

    return cli


def check_program(argv: list[str]):
    programs = {"nas": nas_cli, "ray": ray_cli}
    assert argv[0] in programs, f"{argv}: only nas and ray run in these containers"
    return parse_cli(programs[argv[0]](), argv)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_each_compose_file_validates_against_the_compose_specification(name):
    assert errors_of(without_tags(load(name))) == []


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_no_variable_is_silently_empty(name):
    """Each `${VAR}` has a default or is required (`:?`) somewhere in its file: Compose then
    refuses the whole file while it is unset, rather than run with an empty value."""
    text = (ROOT / name).read_text()
    found = [(match["name"], match["rule"]) for match in VARIABLE.finditer(text)]
    required = {variable for variable, rule in found if rule and rule.endswith("?")}
    plain = {variable for variable, rule in found if rule is None}
    assert plain <= required, plain - required


def test_the_merged_variants_validate_and_the_schema_does_catch_mistakes():
    for variant in ("cpu", *MULTIHOST):
        assert errors_of(EVERY[variant]) == [], variant
    broken = copy.deepcopy(BASE)
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["ray-head"]["healthcheck"]["intervall"] = "10s"
    errors = " ".join(errors_of(broken))
    assert "service_finished" in errors and "intervall" in errors


@pytest.mark.parametrize("variant", EVERY)
def test_every_command_is_one_the_nas_and_ray_command_lines_accept(variant):
    checked = []
    for name, service in services(variant).items():
        if name == "postgres":
            continue
        for argv in command_lines(service["command"]):
            checked.append(check_program(argv).info_name)
        healthcheck = service.get("healthcheck", {}).get("test", [])
        if healthcheck[1:2] == ["ray"]:
            checked.append(check_program(healthcheck[1:]).info_name)
    if variant == "node":
        assert checked == ["ray start"]
        return
    assert {"nas db upgrade", "nas serve", "ray start", "ray health-check"} <= set(checked)
    serve = check_program(command_lines(services(variant)["api"]["command"])[-1])
    assert serve.params["host"] == "0.0.0.0" and serve.params["migrate"] is False
    for wrong in (["nas", "serve", "--no-such-option"], ["nas", "no-such-command"],
                  ["ray", "start", "--num-cpus=many"]):
        with pytest.raises(usage_errors()):  # the check does reject a wrong command line
            check_program(wrong)


def test_the_image_runs_the_api_by_default_in_exec_form():
    cmd = [value for instruction, value in dockerfile_instructions() if instruction == "CMD"]
    assert len(cmd) == 1
    argv = json.loads(cmd[0])  # exec form: a JSON array, no shell between Docker and nas
    assert check_program(argv).info_name == "nas serve"


def test_commands_and_healthchecks_are_exec_form_and_shell_steps_exec_the_server():
    for variant in EVERY:
        for name, service in services(variant).items():
            if "command" in service:
                assert isinstance(service["command"], list), name
                if service["command"][:2] == ["sh", "-c"]:
                    assert service["command"][2].split("&&")[-1].strip().startswith("exec "), name
            if "healthcheck" in service:
                assert service["healthcheck"]["test"][0] == "CMD", name
            assert service.get("init") is True or name == "postgres", name


def nas_variables_the_code_reads() -> set[str]:
    from server.settings import ServerSettings

    names = {f"NAS_{field.upper()}" for field in ServerSettings.model_fields}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r"[\"'](NAS_[A-Z_]+)[\"']", path.read_text()))
    return names


def test_every_variable_set_is_one_the_code_reads():
    known = nas_variables_the_code_reads()
    import ray

    ray_source = Path(ray.__file__).parent
    ray_variables = {name for path in ray_source.rglob("*.py")
                     for name in re.findall(r"RAY_[A-Z_]+", path.read_text(errors="ignore"))}
    for variant in EVERY:
        for name, service in services(variant).items():
            if name == "postgres":
                continue
            for variable in environment(service):
                if variable.startswith("NAS_"):
                    assert variable in known, f"{name}: {variable} is read by nothing"
                else:
                    assert variable.startswith("RAY_") and variable in ray_variables, (
                        f"{name}: {variable}")
    env_lines = [value for instruction, value in dockerfile_instructions() if instruction == "ENV"]
    for variable in re.findall(r"\b(NAS_[A-Z_]+)=", " ".join(env_lines)):
        assert variable in known, f"Dockerfile: {variable} is read by nothing"


def test_every_dependency_and_healthcheck_is_defined():
    for variant in VARIANTS:
        defined = services(variant)
        for name, service in defined.items():
            for target, condition in (service.get("depends_on") or {}).items():
                assert target in defined, f"{name} depends on undefined {target}"
                if condition["condition"] == "service_healthy":
                    assert "healthcheck" in defined[target], f"{target} has no healthcheck"
                elif condition["condition"] == "service_completed_successfully":
                    assert defined[target].get("restart") == "no", target
    api = services()["api"]
    assert api["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                 "migrate": {"condition": "service_completed_successfully"},
                                 "ray-head": {"condition": "service_healthy"}}
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert services()["migrate"]["command"] == ["nas", "db", "upgrade"]
    assert check_program(["nas", "db", "upgrade"]).info_name == "nas db upgrade"


def test_the_database_url_and_ray_address_point_at_the_services():
    defined = services()
    for name in ("migrate", "api", *RAY_NODES):
        url = environment(defined[name])["NAS_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://nas:") and url.endswith("@postgres:5432/nas")
    head_port = next(arg.split("=")[1] for arg in defined["ray-head"]["command"]
                     if arg.startswith("--port="))
    assert environment(defined["api"])["NAS_RAY_ADDRESS"] == f"ray-head:{head_port}"
    assert environment(defined["api"])["NAS_RUNNER"] == "ray"
    for name in ("api", "ray-worker"):
        joins = [arg for argv in command_lines(defined[name]["command"]) for arg in argv
                 if arg.startswith("--address=")]
        assert joins == [f"--address=ray-head:{head_port}"], name


def test_the_shared_volume_is_mounted_where_nas_home_points():
    image_home = re.search(r"\bNAS_HOME=(\S+)", " ".join(
        value for instruction, value in dockerfile_instructions() if instruction == "ENV"))[1]
    for variant in VARIANTS:
        defined = services(variant)
        mounted = {}
        for name in ("api", *RAY_NODES):
            home = environment(defined[name]).get("NAS_HOME", image_home)
            assert home == image_home
            assert environment(defined[name])["NAS_DATA_DIR"].startswith(home + "/")
            volumes = dict(reversed(volume.split(":")[:2]) for volume in defined[name]["volumes"])
            assert home in volumes, f"{name}: nothing mounted at NAS_HOME {home}"
            mounted[name] = volumes[home]
        assert len(set(mounted.values())) == 1, mounted  # one volume, shared
        assert set(mounted.values()) <= set(VARIANTS[variant]["volumes"])
    postgres = services()["postgres"]["volumes"]
    assert any(volume.split(":")[0] in BASE["volumes"] for volume in postgres)


def test_no_ray_port_is_published_and_every_secret_is_required():
    for variant in VARIANTS:
        defined = services(variant)
        published = {name: service["ports"] for name, service in defined.items()
                     if service.get("ports") or service.get("expose")}
        assert list(published) == ["api"], published
        assert [port.rsplit(":", 1)[1] for port in published["api"]] == ["8000"]
        for name in ("api", *RAY_NODES):
            assert defined[name].get("network_mode") is None, name
            env = environment(defined[name])
            assert env["RAY_AUTH_MODE"] == "token", name
            assert REQUIRED.match(env["RAY_AUTH_TOKEN"])["name"] == "RAY_AUTH_TOKEN", name
        token = environment(defined["api"])["NAS_API_TOKEN"]
        assert REQUIRED.match(token)["name"] == "NAS_API_TOKEN"
        password = environment(defined["postgres"])["POSTGRES_PASSWORD"]
        assert REQUIRED.match(password)["name"] == "POSTGRES_PASSWORD"
    head = services()["ray-head"]["command"]
    assert "--include-dashboard=false" in head


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(number) * units[unit]
               for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


def test_gpu_workers_pin_their_gpu_and_the_cpu_variant_reserves_none():
    devices = services("gpu")["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1 and "count" not in devices[0]
    assert devices[0]["device_ids"] and devices[0]["capabilities"] == ["gpu"]
    for variant in VARIANTS:
        for name, service in services(variant).items():
            if name != "ray-worker":
                assert "deploy" not in service, name
    assert "deploy" not in services("cpu")["ray-worker"]
    build_args = {variant: {services(variant)[name]["build"]["args"]["BASE_IMAGE"]
                            for name in ("migrate", "api", *RAY_NODES)} for variant in VARIANTS}
    assert len(build_args["gpu"]) == 1 and "cuda" in build_args["gpu"].pop()
    assert build_args["cpu"] == {"${NAS_BASE_IMAGE:-python:3.11-slim-bookworm}"}
    for variant in VARIANTS:  # one image for every service of a variant
        assert len({services(variant)[name]["image"]
                    for name in ("migrate", "api", *RAY_NODES)}) == 1


def test_stop_grace_periods_leave_time_to_checkpoint():
    for variant in EVERY:
        defined = services(variant)
        for name in RAY_NODES:
            if name in defined:
                assert seconds(defined[name]["stop_grace_period"]) >= 60, name
        if "api" in defined:
            assert seconds(defined["api"]["stop_grace_period"]) >= 30


def test_the_image_build_installs_every_file_the_packages_need(tmp_path):
    """`pip install .` as the Dockerfile runs it, on what the Dockerfile copies: the
    dashboard's templates and scripts and the migrations' template must be in the wheel."""
    context = tmp_path / "context"
    context.mkdir()
    copied = [value.split()[:-1] for instruction, value in dockerfile_instructions()
              if instruction == "COPY"]
    for sources in copied:
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, context / source,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy(origin, context / source)
    assert {path.name for path in context.iterdir()} >= {*PACKAGES, "pyproject.toml"}
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "wheel"), str(context)],
        capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("*.whl"))
    members = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    missing = [path for path in tracked if path not in members]
    assert missing == []


def private_ip(variant: str) -> str:
    """`${NAS_PRIVATE_IP...}` as the multihost override spells it where it requires it."""
    url = environment(services(variant)["api"])["NAS_DATABASE_URL"]
    return re.search(r"@(\$\{NAS_PRIVATE_IP[^}]*\}):5432/", url)[1]


def option(argv: list[str], name: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}=")]
    return values[-1] if values else None


def variable_name(value: str) -> str:
    return VARIABLE.match(value)["name"]


@pytest.mark.parametrize("variant", MULTIHOST)
def test_the_multihost_override_puts_every_address_on_the_private_network(variant):
    """On the head host every service uses the host's network; every address a node on
    another host needs (the GCS, PostgreSQL, each node's own) is NAS_PRIVATE_IP, never
    127.0.0.1 or a compose service name, which other hosts cannot resolve."""
    defined = services(variant)
    assert {service.get("network_mode") for service in defined.values()} == {"host"}
    assert [name for name, service in defined.items() if service.get("ports")] == []
    address = private_ip(variant)
    assert variable_name(address) == "NAS_PRIVATE_IP"
    head = defined["ray-head"]["command"]
    gcs = f"{option(head, 'port')}"
    agent_ports = {}
    for name in ("api", *RAY_NODES):
        env = environment(defined[name])
        url = env["NAS_DATABASE_URL"]
        assert variable_name(url.split("@", 1)[1]) == "NAS_PRIVATE_IP", (name, url)
        assert url.endswith(":5432/nas"), url
        ray_start = next(argv for argv in command_lines(defined[name]["command"])
                         if argv[:2] == ["ray", "start"])
        assert variable_name(option(ray_start, "node-ip-address")) == "NAS_PRIVATE_IP", name
        if name != "ray-head":
            joined = option(ray_start, "address")
            assert variable_name(joined) == "NAS_PRIVATE_IP" and joined.endswith(f":{gcs}"), name
        agent_ports[name] = option(ray_start, "dashboard-agent-listen-port")
    # three Ray nodes share the host's network: each its own dashboard agent port
    assert None not in agent_ports.values() and len(set(agent_ports.values())) == 3, agent_ports
    ray_address = environment(defined["api"])["NAS_RAY_ADDRESS"]
    assert variable_name(ray_address) == "NAS_PRIVATE_IP" and ray_address.endswith(f":{gcs}")
    health = defined["ray-head"]["healthcheck"]["test"]
    assert variable_name(health[-1]) == "NAS_PRIVATE_IP" and health[-1].endswith(f":{gcs}")
    postgres = defined["postgres"]["command"]
    listen = next(arg for arg in postgres if arg.startswith("listen_addresses="))
    assert listen.split("=", 1)[1].split(",")[0] == "127.0.0.1"
    assert variable_name(listen.split(",", 1)[1]) == "NAS_PRIVATE_IP"  # never "*"
    assert environment(defined["api"])["NAS_API_TOKEN"] == environment(
        services("gpu")["api"])["NAS_API_TOKEN"]


def test_the_node_on_another_host_joins_the_head_as_the_head_host_publishes_it():
    [(name, node)] = services("node").items()
    assert name == "ray-worker" and node["network_mode"] == "host" and "ports" not in node
    assert node["image"] == services("gpu")["ray-worker"]["image"]  # the same build
    argv = node["command"]
    assert argv[:2] == ["ray", "start"] and "--block" in argv
    head_port = option(services("gpu")["ray-head"]["command"], "port")
    joined = option(argv, "address")
    assert variable_name(joined) == "NAS_HEAD_IP" and joined.endswith(f":{head_port}")
    assert variable_name(option(argv, "node-ip-address")) == "NAS_NODE_IP"
    env = environment(node)
    base_env = environment(services("gpu")["ray-worker"])
    assert REQUIRED.match(env["RAY_AUTH_TOKEN"])["name"] == "RAY_AUTH_TOKEN"
    shared = ("RAY_AUTH_MODE", "NAS_HOME", "NAS_DATA_DIR")
    assert {key: env[key] for key in shared} == {key: base_env[key] for key in shared}
    user, rest = env["NAS_DATABASE_URL"].split("@", 1)
    assert user == base_env["NAS_DATABASE_URL"].split("@", 1)[0]
    assert variable_name(rest) == "NAS_HEAD_IP" and rest.endswith(":5432/nas")
    mounts = dict(reversed(volume.rsplit(":", 1)) for volume in node["volumes"])
    assert variable_name(mounts[env["NAS_HOME"]]) == "NAS_SHARED_HOME"
    [devices] = node["deploy"]["resources"]["reservations"]["devices"]
    assert devices["count"] == "all" and devices["capabilities"] == ["gpu"]
