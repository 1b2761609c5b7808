"""The container deployment, checked as files: docker-compose.yaml, Dockerfile, .env.example,
.dockerignore and deploy/helm/values.yaml.

Docker does not run where this suite runs (no daemon, no ``docker compose`` plugin), so neither
``docker compose config`` nor ``docker compose up`` is available: the compose file has never been
started by these tests. They read the files with PyYAML and check what can be checked without
starting anything: the official Airflow 3.3 services with their health checks and start order,
exact image versions, the connections against the inventory, the role scripts estate-init applies
against the roles the connections use, every ``${VAR}`` against .env.example, no secret written
into the file, the Dockerfile's base image and installs, and the Helm values' shape. Each checker
is also run on a broken copy, to show it refuses what it should.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import yaml

from lethe.config import load_inventory
from lethe.sources import registry

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
HELM_VALUES = REPO / "deploy" / "helm" / "values.yaml"

# The services of the official Apache Airflow 3.3 docker-compose.yaml (flower and airflow-cli are
# optional profiles there), and the demo estate's.
OFFICIAL_SERVICES = {
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}
ESTATE_SERVICES = {"crm-db", "trials-db", "estate-init"}
ONE_SHOT = {"airflow-init", "estate-init"}
AIRFLOW_SERVICES = {s for s in OFFICIAL_SERVICES if s.startswith("airflow-")}
LONG_RUNNING_AIRFLOW = AIRFLOW_SERVICES - {"airflow-init"}
# Services that must never hold a source's credentials or the audit key: tasks run on the workers.
NOT_TASK_RUNNERS = LONG_RUNNING_AIRFLOW - {"airflow-worker"}
# PostgreSQL's versions are major.minor (16.16 is exact); the others' are major.minor.patch.
VERSION_PARTS = {"postgres": 2}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY$")
# ${VAR}, ${VAR:-default}, ${VAR:?message} and $VAR, but not $$ (a literal $ for the shell).
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
# The same, for replacing: $$ is matched first so that the shell's dollars are never taken.
INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one value: ${VAR}, ${VAR:-default}, ${VAR:?message}, $$."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        value = env.get(name, "")
        if not value and match.group("op") == ":?":
            raise MissingVariable(f"{name}: {match.group('arg')}")
        if not value and match.group("op") == ":-":
            return match.group("arg")
        return value

    return INTERPOLATION.sub(replace, text)


def load_yaml(path: Path) -> dict:
    with path.open() as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def helm() -> dict:
    return load_yaml(HELM_VALUES)


@pytest.fixture(scope="module")
def inventory_connection_ids() -> set[str]:
    inventory = load_inventory()
    return {source.connection_id for source in inventory.sources.values()} | {"lethe_audit"}


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


def filled_env() -> dict[str, str]:
    """A .env with every value filled in (URL-safe, as .env.example asks)."""
    return {name: value or f"fake{name.lower().replace('_', '')}" for name, value in env_example().items()}


def resolved(service: dict) -> dict[str, str]:
    """A service's environment as compose would pass it, with filled_env() as .env."""
    return {key: interpolate(value, filled_env()) for key, value in environment_of(service).items()}


def command_text(service: dict) -> str:
    command = service.get("command", "")
    return "\n".join(command) if isinstance(command, list) else str(command)


def shell_lines(script: str) -> list[str]:
    """The script's commands, one per line, with backslash continuations joined."""
    return [line.strip() for line in script.replace("\\\n", " ").splitlines() if line.strip()]


# --- checkers, each also run on a broken copy below --------------------------------------------


def image_problem(ref: str) -> str | None:
    """Why an image reference is not pinned to an exact version, or None."""
    if "@sha256:" in ref:
        return None
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    if not tag:
        return f"{ref}: no tag (a bare name means latest)"
    if tag == "latest" or "latest" in tag.split("-"):
        return f"{ref}: latest is not a version"
    base = name.rsplit("/", 1)[-1]
    parts = VERSION_PARTS.get(base, 3)
    if not re.search(r"\d+" + r"\.\d+" * (parts - 1) + r"(?![\d.])", tag):
        return f"{ref}: the tag names no exact version ({parts} numbers expected)"
    return None


def image_problems(compose: dict) -> list[str]:
    problems = [image_problem(s["image"]) for s in compose["services"].values() if "image" in s]
    missing = [name for name, s in compose["services"].items() if "image" not in s]
    return [p for p in problems if p] + [f"{name}: no image" for name in missing]


def healthcheck_problems(compose: dict) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            continue
        check = service.get("healthcheck") or {}
        problems += [
            f"{name}: healthcheck without {key}" for key in ("test", "interval", "retries") if key not in check
        ]
    return problems


def environment_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def strings_in(node) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings_in(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings_in(value)]
    return [node] if isinstance(node, str) else []


def secret_literal_problems(compose: dict) -> list[str]:
    """Secrets written into the file rather than taken from .env."""
    problems = []
    for name, service in compose["services"].items():
        for key, value in environment_of(service).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE") and "${" not in value:
                problems.append(f"{name}: {key} is a literal, not a ${{VAR}} from .env")
    for text in strings_in(compose["services"]):
        for url in re.findall(r"[a-z][a-z0-9+]*://[^\s'\"]+", text):
            password = urlsplit(url).password
            if password and not password.startswith("$"):
                problems.append(f"a password written into {url}")
        for literal in re.findall(r"""(?:^|\s)(?:-p|--password=)["']?([^"'\s$][^"'\s]*)""", text):
            problems.append(f"a password on a command line: {literal}")
        for literal in re.findall(r"@password\s*=\s*'([^'$][^']*)'", text):
            problems.append(f"a password in an init command: {literal}")
    return problems


def connection_ids(service: dict) -> set[str]:
    return {k.removeprefix("AIRFLOW_CONN_").lower() for k in environment_of(service) if k.startswith("AIRFLOW_CONN_")}


def mount_target(volumes: list, source: str) -> str | None:
    for volume in volumes:
        parts = volume.split(":")
        if parts[0] == source:
            return parts[1]
    return None


# --- the files parse, and the official layout -------------------------------------------------


def test_the_files_parse(compose, helm):
    assert isinstance(compose["services"], dict)
    assert isinstance(helm, dict)
    assert "x-airflow-common" in compose


def test_every_official_airflow_service_and_the_estates_are_there(services):
    missing = (OFFICIAL_SERVICES | ESTATE_SERVICES) - set(services)
    assert not missing, f"missing services: {sorted(missing)}"


def test_every_long_running_service_has_a_healthcheck(compose):
    assert healthcheck_problems(compose) == []


def test_the_healthcheck_checker_refuses_an_incomplete_one(compose):
    broken = copy.deepcopy(compose)
    del broken["services"]["airflow-scheduler"]["healthcheck"]["retries"]
    del broken["services"]["crm-db"]["healthcheck"]
    assert healthcheck_problems(broken) == [
        "airflow-scheduler: healthcheck without retries",
        "crm-db: healthcheck without test",
        "crm-db: healthcheck without interval",
        "crm-db: healthcheck without retries",
    ]


def test_airflow_services_wait_for_healthy_postgres_and_redis_and_for_init(services):
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        for backend in ("postgres", "redis"):
            assert depends[backend]["condition"] == "service_healthy", (name, backend)
    for name in LONG_RUNNING_AIRFLOW:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_estate_init_runs_after_both_servers_and_airflow_init_and_before_the_workers(services):
    depends = services["estate-init"]["depends_on"]
    assert depends["crm-db"]["condition"] == "service_healthy"
    assert depends["trials-db"]["condition"] == "service_healthy"
    assert depends["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-worker"]["depends_on"]["estate-init"]["condition"] == "service_completed_successfully"


def test_the_airflow_settings_of_the_official_file(compose, services):
    env = resolved(services["airflow-scheduler"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].rsplit(".", 1)[-1] in {"SimpleAuthManager", "FabAuthManager"}
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
    ):
        assert env[key], key
    api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname in services and api.path == "/execution/"
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    assert compose["x-airflow-common"]["build"]["dockerfile"] == "Dockerfile"
    targets = {v.split(":")[1] for v in compose["x-airflow-common"]["volumes"]}
    assert {f"/opt/airflow/{d}" for d in ("dags", "include", "plugins", "logs", "config")} <= targets


# --- images ------------------------------------------------------------------------------------


def test_every_image_is_pinned_to_an_exact_version(compose):
    assert image_problems(compose) == []


@pytest.mark.parametrize(
    "ref",
    ["redis:latest", "redis", "postgres:16", "redis:7.2-bookworm", "mariadb:10.11", "lethe-airflow:latest-3.3.2"],
)
def test_the_image_checker_refuses_floating_tags(compose, ref):
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["image"] = ref
    assert [p for p in image_problems(broken) if p.startswith(ref)], ref


def test_the_image_checker_accepts_exact_versions_and_digests():
    for ref in ("postgres:16.16", "redis:7.2.11-bookworm", "mariadb:10.11.19", "x/y@sha256:" + "0" * 64):
        assert image_problem(ref) is None, ref


def test_the_servers_are_the_versions_asked_for(services):
    assert re.fullmatch(r"postgres:16\.\d+", services["postgres"]["image"])
    assert re.fullmatch(r"postgres:16\.\d+", services["crm-db"]["image"])
    assert re.fullmatch(r"redis:7\.2\.\d+-bookworm", services["redis"]["image"])
    assert re.fullmatch(r"mariadb:10\.11\.\d+", services["trials-db"]["image"])


def test_airflow_services_run_the_built_image_named_after_airflows_version(compose, services):
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    image = compose["x-airflow-common"]["image"]
    assert image.endswith(f"-airflow{pinned}"), image
    for name in AIRFLOW_SERVICES | {"estate-init"}:
        assert services[name]["image"] == image, name


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_dockerfile_builds_on_the_pinned_airflow_for_python_3_11():
    froms = [arg for op, arg in dockerfile_instructions() if op == "FROM"]
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert pinned == "3.3.2"
    assert froms == [f"apache/airflow:{pinned}-python3.11"]
    assert image_problem(froms[0]) is None


def test_the_dockerfile_installs_the_pins_keeping_airflow_then_the_project():
    runs = [arg for op, arg in dockerfile_instructions() if op == "RUN"]
    copies = [arg for op, arg in dockerfile_instructions() if op == "COPY"]
    assert any(c.split()[-2].endswith("requirements.txt") for c in copies)
    requirements = [r for r in runs if re.search(r"pip install .*-r \S*requirements\.txt", r)]
    assert requirements and '"apache-airflow==${AIRFLOW_VERSION}"' in requirements[0]
    project = [r for r in runs if "--no-deps" in r and "pip install" in r]
    assert project and " -e " not in project[0], "the image installs the project, not an editable link"
    assert runs.index(requirements[0]) < runs.index(project[0])
    assert any("postgresql-client" in r and "mariadb-client" in r for r in runs)


def test_the_images_policy_and_inventory_paths_are_where_compose_mounts_include(compose):
    env = dict(
        pair.split("=", 1)
        for op, arg in dockerfile_instructions()
        if op == "ENV"
        for pair in shlex.split(arg)
        if "=" in pair
    )
    include = mount_target(compose["x-airflow-common"]["volumes"], "./include")
    for key in ("LETHE_POLICY_FILE", "LETHE_INVENTORY_DIR"):
        path = Path(env[key])
        assert path.is_relative_to(include), key
        assert (REPO / "include" / path.relative_to(include)).exists(), key


def test_the_build_context_leaves_out_local_state_and_secrets():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".lethe", "reports", ".git", ".env"} <= ignored


# --- connections, roles, volumes ---------------------------------------------------------------


def test_the_connections_are_the_inventorys(services, inventory_connection_ids):
    assert connection_ids(services["airflow-worker"]) == inventory_connection_ids


def test_only_the_workers_hold_connections_and_the_audit_key(services):
    for name in NOT_TASK_RUNNERS | {"postgres", "redis", "crm-db", "trials-db"}:
        env = environment_of(services[name])
        assert not connection_ids(services[name]), name
        assert "LETHE_AUDIT_KEY" not in env, name
    assert environment_of(services["airflow-worker"])["LETHE_AUDIT_KEY"].startswith("${LETHE_AUDIT_KEY:?")


def test_the_connections_use_the_least_privilege_roles(services):
    env = resolved(services["airflow-worker"])
    for conn_id in connection_ids(services["airflow-worker"]) - {"weblogs"}:
        name = conn_id.removeprefix("lethe_")
        url = urlsplit(env[f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert url.username == f"lethe_{name}", conn_id
        # The role's own password from .env, the one estate-init gives the role.
        assert url.password == filled_env()[f"LETHE_{name.upper()}_DB_PASSWORD"], conn_id
        assert url.hostname in {"crm-db", "trials-db"}
        # The trial server's role may use no database but the trial ones: its connection names none.
        assert url.path == ("" if conn_id == "trials" else f"/{conn_id}"), conn_id


def test_the_weblogs_connection_is_the_workers_log_volume(compose, services):
    worker = services["airflow-worker"]
    weblogs = json.loads(environment_of(worker)["AIRFLOW_CONN_WEBLOGS"])
    assert weblogs["conn_type"] == "fs"
    assert mount_target(worker["volumes"], "lethe-weblogs") == weblogs["extra"]["path"]
    assert mount_target(services["estate-init"]["volumes"], "lethe-weblogs") == weblogs["extra"]["path"]
    reports = environment_of(worker)["LETHE_REPORTS_DIR"]
    assert mount_target(worker["volumes"], "lethe-reports") == reports
    assert {"lethe-weblogs", "lethe-reports"} <= set(compose["volumes"])


def role_script_uses(estate_init: dict) -> list[dict]:
    """How estate-init applies each role script: file, database, role."""
    uses = []
    for line in shell_lines(command_text(estate_init)):
        words = shlex.split(line.replace("$$", "$"))
        if words[0] == "psql" and "-f" in words:
            variables = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "-v")
            uses.append(
                {
                    "file": words[words.index("-f") + 1],
                    "database": words[words.index("-d") + 1],
                    "role": variables.get("role"),
                    "password": variables.get("password", ""),
                }
            )
        if words[0] == "mariadb" and "<" in words:
            init = next(w for w in words if w.startswith("--init-command="))
            settings = dict(re.findall(r"@(\w+)\s*=\s*'([^']*)'", init))
            uses.append(
                {
                    "file": words[words.index("<") + 1],
                    "database": settings.get("db", ""),
                    "role": settings["role"],
                    **settings,
                }
            )
    return uses


def test_estate_init_applies_every_role_script_with_its_default_role(services):
    uses = role_script_uses(services["estate-init"])
    assert sorted(u["file"] for u in uses) == [
        "/roles/mariadb/trials.sql",
        "/roles/postgresql/audit.sql",
        "/roles/postgresql/crm.sql",
        "/roles/postgresql/marketing.sql",
    ]
    for use in uses:
        assert use["role"] == f"lethe_{Path(use['file']).stem}", use
        assert use["password"].startswith("${LETHE_"), use
    by_file = {Path(u["file"]).stem: u for u in uses}
    assert by_file["trials"]["host"] == "%"


def test_the_roles_estate_init_creates_are_the_ones_the_connections_log_in_as(services):
    env = resolved(services["airflow-worker"])
    logins = {}
    for key, value in env.items():
        if key.startswith("AIRFLOW_CONN_") and "://" in value:
            url = urlsplit(value)
            logins[url.path.lstrip("/")] = url.username
    for use in role_script_uses(services["estate-init"]):
        assert logins[use["database"]] == use["role"], use


def role_scripts(services) -> list[Path]:
    estate_init = services["estate-init"]
    host = next(v.split(":")[0] for v in estate_init["volumes"] if v.split(":")[1] == "/roles")
    assert next(v for v in estate_init["volumes"] if v.split(":")[1] == "/roles").endswith(":ro")
    return [REPO / host / Path(u["file"]).relative_to("/roles") for u in role_script_uses(estate_init)]


def test_the_role_scripts_estate_init_mounts_exist(services):
    missing = [str(p.relative_to(REPO)) for p in role_scripts(services) if not p.is_file()]
    assert not missing, f"role scripts not in deploy/roles yet: {missing}"


def test_each_role_script_names_its_default_role(services):
    present = [p for p in role_scripts(services) if p.is_file()]
    if not present:
        pytest.skip("no role script in deploy/roles yet (see test_the_role_scripts_estate_init_mounts_exist)")
    for path in present:
        assert f"lethe_{path.stem}" in path.read_text(), path


def test_estate_init_seeds_then_creates_the_chain_then_applies_the_roles(services):
    lines = shell_lines(command_text(services["estate-init"]))
    seed = next(i for i, line in enumerate(lines) if line.startswith("lethe seed-demo"))
    words = shlex.split(lines[seed])
    for option in ("--as-of", "--crm", "--marketing", "--trials", "--audit", "--weblogs"):
        assert option in words, option
    assert words[words.index("--weblogs") + 1] == "/opt/lethe/weblogs"
    audit_init = next(i for i, line in enumerate(lines) if line.endswith("lethe audit init"))
    # As the administrator: the chain's table and triggers are the owner's, not lethe_audit's.
    assert lines[audit_init].startswith('AIRFLOW_CONN_LETHE_AUDIT="$${admin_pg}/lethe_audit"')
    assert 'admin_pg="postgresql://postgres:$${PGPASSWORD}@crm-db:5432"' in lines
    assert resolved(services["estate-init"])["PGPASSWORD"] == filled_env()["CRM_DB_ADMIN_PASSWORD"]
    first_role = next(i for i, line in enumerate(lines) if "/roles/" in line)
    assert seed < audit_init < first_role


@pytest.mark.parametrize("name", ["airflow-apiserver", "airflow-init", "estate-init"])
def test_the_services_shell_scripts_parse(services, name, tmp_path):
    """`bash -n` on each script as compose would hand it over (interpolated, $$ made $)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    command = services[name]["command"]
    script = command[command.index("-c") + 1]
    path = tmp_path / f"{name}.sh"
    path.write_text(interpolate(script, filled_env()))
    done = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_airflow_init_creates_the_mapped_tasks_pools_as_make_does(services):
    script = command_text(services["airflow-init"])
    created = dict(re.findall(r"airflow pools set (\w+) (\d+)", script))
    pools = {pool for pool in registry.mapped_kinds().values() if pool}
    assert pools and pools <= set(created)
    made = dict(re.findall(r"airflow pools set (\w+) (\d+)", (REPO / "Makefile").read_text()))
    assert created["lethe_trial_drops"] == made["lethe_trial_drops"] == "2"


# --- .env and secrets --------------------------------------------------------------------------


def test_every_compose_variable_is_in_env_example_and_back():
    used = {a or b for a, b in COMPOSE_VARIABLE.findall(COMPOSE.read_text())}
    documented = set(env_example())
    assert used - documented == set(), "used in docker-compose.yaml, not in .env.example"
    assert documented - used == set(), "in .env.example, not used by docker-compose.yaml"


def test_the_variable_finder_skips_the_shells_dollars():
    text = "a: ${ONE:?x} $TWO $${NOT_ME} $$(id -u) ${THREE:-3}"
    assert {a or b for a, b in COMPOSE_VARIABLE.findall(text)} == {"ONE", "TWO", "THREE"}


def test_secrets_are_required_and_empty_in_the_example_with_a_comment():
    text = COMPOSE.read_text()
    required = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text))
    example = env_example()
    assert {"AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "LETHE_AUDIT_KEY", "AIRFLOW_ADMIN_PASSWORD"} <= required
    for name in required:
        assert example[name] == "", f"{name}: .env.example must not carry a value for a secret"
    blocks = ENV_EXAMPLE.read_text().split("\n\n")
    for name in example:
        block = next(b for b in blocks if re.search(rf"^{name}=", b, re.M))
        assert re.search(r"^#", block, re.M), f"{name} is not explained"
    assert "Fernet.generate_key()" in ENV_EXAMPLE.read_text()
    assert "openssl rand" in ENV_EXAMPLE.read_text()


def test_compose_stops_on_an_empty_secret_and_names_it():
    text = COMPOSE.read_text()
    interpolate(text, filled_env())  # every value filled in: nothing missing
    with pytest.raises(MissingVariable, match=r"^AIRFLOW_\w+: set AIRFLOW_\w+ in \.env \(see \.env\.example\)$"):
        interpolate(text, env_example())  # .env.example copied as is: its secrets are empty
    without_key = {**filled_env(), "LETHE_AUDIT_KEY": ""}
    with pytest.raises(MissingVariable, match="LETHE_AUDIT_KEY"):
        interpolate(text, without_key)


def test_interpolation_as_compose_does_it():
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("${A} $A ${B:-x} ${EMPTY:-y} $${A} $$(id -u)", env) == "1 1 x y ${A} $(id -u)"
    with pytest.raises(MissingVariable, match="B: say so"):
        interpolate("${B:?say so}", env)


def test_env_is_git_ignored():
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_no_secret_is_written_into_the_compose_file(compose):
    assert secret_literal_problems(compose) == []


def test_the_secret_checker_refuses_literals(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["crm-db"]["environment"]["POSTGRES_PASSWORD"] = "postgres"
    worker_env = broken["services"]["airflow-worker"]["environment"]
    worker_env["AIRFLOW_CONN_CRM"] = "postgresql://lethe_crm:hunter2@crm-db:5432/crm"
    broken["services"]["estate-init"]["command"][-1] += "\nmariadb -h trials-db -uroot -proot < x.sql\n"
    problems = secret_literal_problems(broken)
    assert any("POSTGRES_PASSWORD" in p for p in problems)
    assert any("hunter2" in p for p in problems)
    assert any("command line: root" in p for p in problems)


# --- Kubernetes: the Helm values ---------------------------------------------------------------


def test_helm_runs_the_same_image_and_executor(compose, helm):
    name, _, tag = compose["x-airflow-common"]["image"].rpartition(":")
    image = helm["images"]["airflow"]
    assert image["repository"].rsplit("/", 1)[-1] == name
    assert str(image["tag"]) == tag
    assert image_problem(f"{image['repository']}:{image['tag']}") is None
    assert helm["executor"] in {"CeleryExecutor", "KubernetesExecutor"}
    assert str(helm["airflowVersion"]) == "3.3.2"


def test_helm_takes_the_connections_and_the_audit_key_from_a_secret(helm, inventory_connection_ids):
    names = {entry["envName"] for entry in helm["secret"]}
    expected = {f"AIRFLOW_CONN_{c.upper()}" for c in inventory_connection_ids} | {"LETHE_AUDIT_KEY"}
    assert names == expected
    assert all(entry["secretName"] and entry["secretKey"] for entry in helm["secret"])
    for key in ("fernetKeySecretName", "jwtSecretName"):
        assert helm[key], key
    assert not secret_literal_problems({"services": {"helm": {"environment": {}, "values": helm}}})


def test_helm_reads_the_dags_and_policy_from_git_and_mounts_logs_and_reports(helm):
    sync = helm["dags"]["gitSync"]
    assert sync["enabled"] and sync["subPath"] == "dags" and (REPO / sync["subPath"]).is_dir()
    env = {e["name"]: e["value"] for e in helm["env"]}
    for key in ("LETHE_POLICY_FILE", "LETHE_INVENTORY_DIR"):
        path = Path(env[key])
        assert path.is_relative_to("/opt/airflow/dags/repo"), key
        assert (REPO / path.relative_to("/opt/airflow/dags/repo")).exists(), key
    mounts = {m["mountPath"] for m in helm["workers"]["extraVolumeMounts"]}
    assert {"/opt/lethe/weblogs", env["LETHE_REPORTS_DIR"]} <= mounts
    assert int(helm["workers"]["celery"]["replicas"]) >= 1


def helm_task_policy(helm):
    namespace: dict = {}
    exec(compile(helm["airflowLocalSettings"], "airflow_local_settings.py", "exec"), namespace)
    return namespace


def test_helm_creates_every_pool_the_tasks_run_in(helm):
    script = "\n".join(helm["migrateDatabaseJob"]["args"])
    created = dict(re.findall(r"airflow pools set (\w+) (\d+)", script))
    assert "airflow db migrate" in script
    assert created["lethe_trial_drops"] == "2"
    pooled = {f"lethe_{s}" for s in helm_task_policy(helm)["POOLED_SOURCES"]}
    assert pooled <= set(created), "the cluster policy sends tasks to a pool nobody creates"


def test_helms_cluster_policy_puts_a_sources_tasks_in_its_pool(helm):
    task_policy = helm_task_policy(helm)["task_policy"]

    def pool_after(dag_id: str, pool: str = "default_pool") -> str:
        task = SimpleNamespace(dag_id=dag_id, pool=pool)
        task_policy(task)
        return task.pool

    assert pool_after("lethe_crm_retention") == "lethe_crm"
    assert pool_after("lethe_marketing_retention") == "lethe_marketing"
    assert pool_after("lethe_trials_retention", "lethe_trial_drops") == "lethe_trial_drops"
    assert pool_after("lethe_weblogs_retention") == "default_pool"
    assert pool_after("someone_elses_dag") == "default_pool"
