"""The dbt models the sidecar runs live, compiled by dbt itself for DuckDB.

Workflow state (`fct_workflows`) and cron health (`fct_cron_job_totals`) are defined once, in the
dbt project. The sidecar does not re-implement them: it asks dbt to compile the models between a
few inputs it can supply (the last build's event facts and key map, the raw entity tables) and
those targets, and runs that SQL in an in-memory DuckDB over the affected workflows' rows
(`streaming/state/engine.py`). dbt's compile for the `duckdb` target renders every macro
(`bytewise`, `sorted_string_agg`, `latest_copy_rank`, ...) exactly as a DuckDB build does.

`python -m streaming.state.compiled` compiles into `dbt_project/target/live_models.json` (beside
dbt's own manifest; one for every data directory: the lake's path is filled in when it is read);
`ensure(settings)` reads it back, compiling first when the project changed since.
Compiling runs dbt in a child process (~5 s): the sidecar starts without waiting and without
dbt's imports, and serves the last build plus live events by the old rules until it is ready.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from resources.dbt_inputs import DBT_PROJECT_DIR, newest_input
from resources.settings import Settings

# What the live state computes, and the last build's tables it starts from instead of recomputing
# them (the correlation and the event facts are the build's; the sidecar's live correlation joins
# what arrived since: streaming/correlate.py).
TARGETS = ("fct_workflows", "fct_cron_job_totals")
BOUNDARY = ("fct_workflow_events", "int_correlation_keys_linked", "int_events_correlated")
FILE_NAME = "live_models.json"
DATA_DIR_MARK = "{data_dir}"
# Bumped when the file's shape changes.
FORMAT = 2


@dataclass(frozen=True)
class Model:
    name: str
    sql: str  # compiled for DuckDB, with the relations of its parents as dbt named them
    parents: tuple[str, ...]  # model, boundary or source names, in `relations`


@dataclass(frozen=True)
class LiveModels:
    """The compiled chain: models in run order, and the relation text dbt wrote for each input."""

    models: tuple[Model, ...]
    relations: dict[str, str]  # model/boundary/source name -> relation text in the compiled SQL
    sources: tuple[str, ...]  # "<source>.<table>" names the chain reads raw
    source_locations: dict[str, str]  # source name -> its DuckDB relation, DATA_DIR_MARK for the data dir
    stamp: float  # the newest project input it was compiled from

    def locations(self, data_dir: Path) -> dict[str, str]:
        """Each source's relation over the lake of `data_dir`."""
        return {s: loc.replace(DATA_DIR_MARK, str(data_dir)) for s, loc in self.source_locations.items()}

    def chain(self, target: str) -> list[Model]:
        """The models `target` needs, in run order."""
        by_name = {m.name: m for m in self.models}
        needed: set[str] = set()
        todo = [target]
        while todo:
            name = todo.pop()
            if name in by_name and name not in needed:
                needed.add(name)
                todo.extend(by_name[name].parents)
        return [m for m in self.models if m.name in needed]


def path_for(settings: Settings | None = None) -> Path:
    return DBT_PROJECT_DIR / "target" / FILE_NAME


def _plan(manifest: dict) -> tuple[list[str], list[str]]:
    """The models between BOUNDARY/sources and TARGETS (run order) and the sources they read."""
    nodes = {n["unique_id"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    by_name = {n["name"]: uid for uid, n in nodes.items()}
    boundary = {by_name[b] for b in BOUNDARY}
    order: list[str] = []
    sources: list[str] = []
    seen: set[str] = set()

    def visit(uid: str) -> None:
        if uid in seen:
            return
        seen.add(uid)
        if uid.startswith("source."):
            sources.append(uid)
            return
        if uid in boundary:
            return
        for parent in nodes[uid]["depends_on"]["nodes"]:
            visit(parent)
        order.append(uid)

    for target in TARGETS:
        visit(by_name[target])
    return order, sources


def compile_models(settings: Settings, out: Path | None = None) -> Path:
    """Compile the live chain with dbt (in this process) and write it to `out`, atomically."""
    from dbt.cli.main import dbtRunner

    out = out or path_for(settings)
    stamp = newest_input(DBT_PROJECT_DIR)
    with tempfile.TemporaryDirectory(prefix="cc-live-models-") as tmp:
        # dbt's DuckDB profile opens `$CC_DATA_DIR/warehouse.duckdb`: an empty one of its own,
        # never the warehouse a build may hold open. Its source paths are put back below.
        scratch = Path(tmp) / "data"
        scratch.mkdir()
        os.environ.update({**settings.dbt_env(), "CC_DATA_DIR": str(scratch)})
        project = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
                   "--target", "duckdb", "--target-path", str(Path(tmp) / "target")]
        parsed = dbtRunner().invoke(["parse", "--quiet", *project])
        if not parsed.success:
            raise RuntimeError(f"dbt parse failed: {parsed.exception}")
        manifest = parsed.result.writable_manifest().to_dict()
        order, source_ids = _plan(manifest)
        names = [manifest["nodes"][uid]["name"] for uid in order]
        # Every source relation in the SQL, landed or not: the sidecar supplies each one itself.
        result = dbtRunner(manifest=parsed.result).invoke([
            "compile", "--quiet", "--no-populate-cache", "--vars", '{"include_unlanded": true}', "--select", *names,
            *project])
        if not result.success:
            raise RuntimeError(f"dbt compile failed: {result.exception}")
        manifest = json.loads((Path(tmp) / "target" / "manifest.json").read_text())
        nodes, srcs = manifest["nodes"], manifest["sources"]

        def name_of(uid: str) -> str:
            if uid.startswith("source."):
                return f"{srcs[uid]['source_name']}.{srcs[uid]['name']}"
            return nodes[uid]["name"]

        relations = {}
        for uid in [*order, *source_ids, *(u for u in nodes if nodes[u]["name"] in BOUNDARY)]:
            relations[name_of(uid)] = (srcs[uid] if uid.startswith("source.") else nodes[uid])["relation_name"]
        models = [{"name": nodes[uid]["name"], "sql": nodes[uid]["compiled_code"],
                   "parents": [name_of(p) for p in nodes[uid]["depends_on"]["nodes"]]} for uid in order]
        locations = {name_of(uid): srcs[uid]["relation_name"].replace(str(scratch), DATA_DIR_MARK)
                     for uid in source_ids}
    body = {"format": FORMAT, "stamp": stamp, "models": models, "relations": relations,
            "sources": [name_of(uid) for uid in source_ids], "source_locations": locations}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp_out.write_text(json.dumps(body, indent=1))
    os.replace(tmp_out, out)
    return out


def read(path: Path) -> LiveModels | None:
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if body.get("format") != FORMAT:
        return None
    return LiveModels(
        models=tuple(Model(m["name"], m["sql"], tuple(m["parents"])) for m in body["models"]),
        relations=body["relations"], sources=tuple(body["sources"]),
        source_locations=body["source_locations"], stamp=body["stamp"])


def fresh(settings: Settings) -> LiveModels | None:
    """The compiled chain, if it is there and no project file changed since it was compiled."""
    models = read(path_for(settings))
    if models is None or models.stamp < newest_input(DBT_PROJECT_DIR):
        return None
    return models


def ensure(settings: Settings) -> LiveModels:
    """The compiled chain, compiled now (in a child process) if missing or stale. Processes that
    find it stale together compile it once: the others wait for that one and read its file."""
    models = fresh(settings)
    if models is not None:
        return models
    lock_path = path_for(settings).with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        models = fresh(settings)
        if models is not None:
            return models
        env = {**os.environ, "CC_DATA_DIR": str(settings.data_dir)}
        done = subprocess.run([sys.executable, "-m", "streaming.state.compiled"], env=env,
                              capture_output=True, text=True, check=False)
    models = read(path_for(settings))
    if done.returncode != 0 or models is None:
        raise RuntimeError(f"compiling the live models failed: {(done.stderr or done.stdout).strip()[-2000:]}")
    return models


def main() -> None:
    path = compile_models(Settings.from_env())
    print(path)


if __name__ == "__main__":
    main()
