"""Airflow 3.3 as a deployment on this machine: separate processes, PostgreSQL metadata, real sources.

    python scripts/cluster.py start [--executor local|celery] [--name lethe] [--as-of YYYY-MM-DD]
    python scripts/cluster.py stop  [--name lethe]
    python scripts/cluster.py env   [--name lethe]      # the environment, as shell exports
    python scripts/cluster.py worker [--name lethe]     # one more Celery worker (scale out)
    python scripts/cluster.py remove [--name lethe]     # stop, then drop its databases and roles

``start`` (``make cluster``):

1. creates, on the local PostgreSQL, the databases ``<name>_airflow`` (Airflow's metadata),
   ``<name>_crm``, ``<name>_marketing`` and ``<name>_audit`` (the trial databases go to the local
   MariaDB); an earlier cluster of the same name is stopped and its databases are replaced;
2. seeds the demo estate into them (``lethe seed-demo`` with server URLs, as the administrator);
   the connection logs go to ``.lethe/<name>/estate/weblogs``;
3. creates Lethe's least-privilege roles with the scripts in ``deploy/roles/`` (``<name>_crm``,
   ``<name>_marketing``, ``<name>_audit`` on PostgreSQL, ``<name>_trials`` on MariaDB): the DAGs
   connect as those roles and nothing else;
4. migrates the metadata database, creates the pool, arms every source (recorded in the audit
   trail), and starts ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and, with
   ``--executor celery``, one ``celery worker`` on the local Redis (database ``--redis-db``), each
   in a process group of its own whose id is written to ``.lethe/<name>/pids.json``;
5. waits until the API reports every component healthy and prints the UI address and login.

``stop`` (``make cluster-stop``) signals exactly the process groups in ``pids.json`` (TERM, then
KILL after 30 s) and leaves the databases, so the estate can be looked at afterwards.

Settings already in the environment win (``AIRFLOW__...``), so a test can shorten intervals.
Secrets (Fernet key, JWT secret) are generated once per cluster into ``.lethe/<name>/secrets.json``
(mode 0600); the audit key is the demo estate's.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = "127.0.0.1:5432"
MARIADB = "127.0.0.1:3306"
SOURCES = ("crm", "marketing", "trials", "weblogs")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def home_of(name: str) -> Path:
    return REPO / ".lethe" / name


def _run(args: list[str], env: dict | None = None, stdin: str | None = None) -> str:
    done = subprocess.run(args, env=env, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cluster: {' '.join(args[:3])} ... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def _psql(database: str, *args: str) -> str:
    return _run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "root", "-d", database, *args])


def _mariadb(*args: str, stdin: str | None = None) -> str:
    return _run(["mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", *args], stdin=stdin)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _secrets(home: Path) -> dict:
    path = home / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "jwt_secret": secrets.token_urlsafe(32),
        "port": _free_port(),
    }
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def environment(name: str, executor: str = "local", redis_db: int = 1) -> dict[str, str]:
    """Every process's environment: Airflow's settings, the connections as Lethe's roles, the key."""
    home = home_of(name)
    home.mkdir(parents=True, exist_ok=True)
    values = _secrets(home)
    port = values["port"]
    metadata = f"{PG}/{name}_airflow"
    estate = home / "estate"
    key_file = estate / "demo-audit-key"
    env = {
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": {"local": "LocalExecutor", "celery": "CeleryExecutor"}[executor],
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__FERNET_KEY": values["fernet_key"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": values["jwt_secret"],
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://root@{metadata}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"postgresql+psycopg_async://root@{metadata}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"redis://127.0.0.1:6379/{redis_db}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
        "AIRFLOW_CONN_CRM": f"postgresql://{name}_crm@{PG}/{name}_crm",
        "AIRFLOW_CONN_MARKETING": f"postgresql://{name}_marketing@{PG}/{name}_marketing",
        "AIRFLOW_CONN_LETHE_AUDIT": f"postgresql://{name}_audit@{PG}/{name}_audit",
        # The trial server, no database of its own: the role reaches only the trial databases.
        "AIRFLOW_CONN_TRIALS": f"mysql://{name}_trials@{MARIADB}",
        "AIRFLOW_CONN_WEBLOGS": json.dumps({"conn_type": "fs", "extra": {"path": str(estate / "weblogs")}}),
        "LETHE_REPORTS_DIR": str(home / "reports"),
        "LETHE_CLUSTER": name,
    }
    if key_file.exists():
        env["LETHE_AUDIT_KEY"] = key_file.read_text().strip()
    # Settings of the caller's environment win (a test shortens heartbeats and retry delays).
    for variable, value in os.environ.items():
        if variable.startswith("AIRFLOW__") or variable in ("LETHE_RETRY_DELAY_SECONDS", "LETHE_BATCH_SIZE"):
            env[variable] = value
    return env


def _process_env(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LETHE_"))}
    return {**base, **env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def create_databases(name: str) -> None:
    """Replace the cluster's databases (as the administrator)."""
    for database in ("airflow", "crm", "marketing", "audit"):
        _psql("postgres", "-c", f'DROP DATABASE IF EXISTS "{name}_{database}" WITH (FORCE)')
        _psql("postgres", "-c", f'CREATE DATABASE "{name}_{database}"')


def seed(name: str, as_of: str, trial_tag: str, small: bool) -> None:
    estate = home_of(name) / "estate"
    admin = {db: f"postgresql://root@{PG}/{name}_{db}" for db in ("crm", "marketing", "audit")}
    args = [str(BIN / "lethe"), "seed-demo", "--as-of", as_of, "--estate", str(estate)]
    args += ["--crm", admin["crm"], "--marketing", admin["marketing"], "--audit", admin["audit"]]
    args += ["--trials", f"mysql://root@{MARIADB}", "--weblogs", str(estate / "weblogs")]
    args += ["--trial-tag", trial_tag] + (["--small"] if small else [])
    print(_run(args, env=_process_env({})), end="")


def create_roles(name: str) -> None:
    """Lethe's roles, by the scripts a DBA runs (deploy/roles), with this cluster's names."""
    roles = REPO / "deploy" / "roles"
    for source in ("crm", "marketing", "audit"):
        _psql(f"{name}_{source}", "-v", f"role={name}_{source}", "-f", str(roles / "postgresql" / f"{source}.sql"))
    settings = f"SET @role='{name}_trials', @host='%';"
    _mariadb(f"--init-command={settings}", stdin=(roles / "mariadb" / "trials.sql").read_text())


def airflow(env: dict[str, str], *args: str) -> str:
    return _run([str(BIN / "airflow"), *args], env=_process_env(env))


STARTED: dict[str, subprocess.Popen] = {}


def start_process(home: Path, env: dict[str, str], label: str, args: list[str]) -> int:
    """One Airflow component in a process group of its own (so stop reaches its children too)."""
    log = open(home / "logs" / f"{label}.log", "a")
    proc = subprocess.Popen(
        [str(BIN / "airflow"), *args],
        env=_process_env(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    STARTED[label] = proc
    pids = read_pids(home)
    pids[label] = proc.pid
    (home / "pids.json").write_text(json.dumps(pids, indent=1))
    return proc.pid


def read_pids(home: Path) -> dict[str, int]:
    path = home / "pids.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(home: Path, label: str, sig: int = signal.SIGTERM, grace: float = 30) -> None:
    """Signal one component's process group; KILL what is left after ``grace`` seconds."""
    pids = read_pids(home)
    pid = pids.pop(label, None)
    if pid is not None and _alive(pid):
        os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        # Reap it when it is our child (a test's stop), so it leaves no zombie entry behind.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    (home / "pids.json").write_text(json.dumps(pids, indent=1))


def stop(name: str) -> None:
    home = home_of(name)
    pids = read_pids(home)
    if not pids:
        print(f"no cluster {name!r} is running (nothing in {home / 'pids.json'})")
        return
    for label in reversed(list(pids)):
        print(f"stopping {label} (process group {pids[label]})")
        stop_process(home, label)
    (home / "pids.json").unlink(missing_ok=True)


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as response:
        return json.loads(response.read())


def wait_healthy(port: int, home: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = health(port)
            states = [last.get(part, {}).get("status") for part in ("metadatabase", "scheduler", "triggerer")]
            dag_processor = (last.get("dag_processor") or {}).get("status")
            if all(state == "healthy" for state in states) and dag_processor in ("healthy", None):
                return
        except OSError as exc:
            last = exc
        dead = [label for label, proc in STARTED.items() if proc.poll() is not None]
        if dead:
            raise SystemExit(f"cluster: {', '.join(dead)} stopped; see {home / 'logs'}")
        time.sleep(2)
    raise SystemExit(f"cluster: not healthy after {timeout:.0f} s (last: {last!r}); see {home / 'logs'}")


def start(name: str, executor: str, as_of: str, redis_db: int, trial_tag: str, small: bool = False) -> None:
    home = home_of(name)
    if read_pids(home):
        stop(name)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    print(f"cluster {name}: databases on PostgreSQL {PG} and MariaDB {MARIADB}")
    create_databases(name)
    seed(name, as_of, trial_tag, small)
    create_roles(name)
    env = environment(name, executor, redis_db)
    if executor == "celery":
        subprocess.run(["redis-cli", "-n", str(redis_db), "FLUSHDB"], capture_output=True)
    airflow(env, "db", "migrate")
    airflow(env, "pools", "set", "lethe_trial_drops", "2", "Lethe: concurrent trial database drops")
    arm = [str(BIN / "lethe"), "arm", *SOURCES, "--by", f"make cluster ({name})"]
    print(_run(arm, env=_process_env(env)), end="")
    start_process(home, env, "api-server", ["api-server"])
    start_process(home, env, "scheduler", ["scheduler"])
    start_process(home, env, "dag-processor", ["dag-processor"])
    start_process(home, env, "triggerer", ["triggerer"])
    if executor == "celery":
        add_worker(name, env)
    (home / "env").write_text("".join(f"export {k}={_shell_quote(v)}\n" for k, v in env.items()))
    port = int(env["AIRFLOW__API__PORT"])
    wait_healthy(port, home)
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    password = json.loads(passwords.read_text()).get("admin", "?") if passwords.exists() else "?"
    print(
        f"Airflow ({env['AIRFLOW__CORE__EXECUTOR']}) is up: http://127.0.0.1:{port}  "
        f"user: admin  password: {password}\n"
        f"processes: {', '.join(f'{k} {v}' for k, v in read_pids(home).items())} (logs in {home / 'logs'})\n"
        f"the same environment for the airflow and lethe commands: source {home / 'env'}\n"
        "make cluster-stop stops it."
    )


def add_worker(name: str, env: dict[str, str] | None = None) -> str:
    """Start one more Celery worker (``worker``, ``worker-2``, ...) on the cluster's broker."""
    home = home_of(name)
    env = env or _saved_environment(home)
    taken = read_pids(home)
    label = "worker" if "worker" not in taken else f"worker-{sum(k.startswith('worker') for k in taken) + 1}"
    start_process(home, env, label, ["celery", "worker", "--concurrency", "4", "--celery-hostname", f"{label}@%h"])
    return label


def _saved_environment(home: Path) -> dict[str, str]:
    """The environment ``start`` wrote to ``<home>/env``."""
    import shlex

    env = {}
    for line in (home / "env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env


def remove(name: str, trial_tag: str) -> None:
    """Stop the cluster, then drop its databases and roles (and, with a tag, its trial databases)."""
    stop(name)
    for database in ("airflow", "crm", "marketing", "audit"):
        _psql("postgres", "-c", f'DROP DATABASE IF EXISTS "{name}_{database}" WITH (FORCE)')
    for source in ("crm", "marketing", "audit"):
        _psql("postgres", "-c", f'DROP ROLE IF EXISTS "{name}_{source}"')
    statements = [f"DROP USER IF EXISTS '{name}_trials'@'%'"]
    if trial_tag:
        listed = _mariadb("-N", "-e", "SHOW DATABASES").splitlines()
        quoted = ["`" + db.replace("`", "``") + "`" for db in listed if f"_{trial_tag}" in db]
        statements += [f"DROP DATABASE IF EXISTS {db}" for db in quoted]
    _mariadb("-e", "; ".join(statements))


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "stop", "env", "worker", "remove"))
    parser.add_argument("--name", default=os.environ.get("CLUSTER_NAME", "lethe"))
    parser.add_argument("--executor", choices=("local", "celery"), default=os.environ.get("EXECUTOR", "local"))
    parser.add_argument("--as-of", default=datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    parser.add_argument("--redis-db", type=int, default=1)
    parser.add_argument("--trial-tag", default="", help="infix of the trial databases' names, to share a server")
    parser.add_argument("--small", action="store_true", help="a small demo estate (live tests)")
    args = parser.parse_args(argv)
    if args.command == "start":
        start(args.name, args.executor, args.as_of, args.redis_db, args.trial_tag, args.small)
    elif args.command == "stop":
        stop(args.name)
    elif args.command == "worker":
        print(f"started {add_worker(args.name)}")
    elif args.command == "remove":
        remove(args.name, args.trial_tag)
    else:
        print((home_of(args.name) / "env").read_text(), end="")


if __name__ == "__main__":
    main()
