"""The code location for a Kubernetes deployment: the project's definitions, with the sharded
documents job on dagster-k8s's `k8s_job_executor` (one pod per step: the snapshot, each shard,
the collect step), and the fan-out sensor launching that job. Turn on `daily_state_schedule` and
`documents_fan_out_sensor`: the day's state runs at 06:00, its documents fan out after it.
Point the user code deployment at this module (values.yaml) and install `dagster-k8s` (the same
version as dagster) in the image (Dockerfile).

Only what differs from one machine lives here; everything else is dagster_project/.
"""

import dagster as dg
from dagster_k8s import k8s_job_executor

from dagster_project.defs.dunning.sharded_documents import build_documents_fan_out_sensor, build_sharded_documents_job
from dagster_project.definitions import defs as project_defs

# Per-step pods: a shard renders with `render_workers` processes (2 by default) at ~80-110 MiB each,
# so 2 CPUs and 512 MiB per shard pod; the snapshot and collect steps hold DuckDB (memory_limit in
# dunning.yaml) and get the larger request. The volume holds the database, the dispatch folder and
# the outbox: every pod mounts it at the same path (dunning.yaml names the paths).
SHARED_VOLUME = {"name": "dunning-data", "persistentVolumeClaim": {"claimName": "dunning-data"}}
MOUNT = {"name": "dunning-data", "mountPath": "/data"}

k8s_executor = k8s_job_executor.configured({
    "max_concurrent": 16,  # shard pods at a time (docs/scaling.md: sizing)
    "volumes": [SHARED_VOLUME],
    "volume_mounts": [MOUNT],
    "env_config_maps": ["dunning-config"],
    "env_secrets": ["dunning-secrets"],  # SMTP password, webhook and SMS signing secrets
    "step_k8s_config": {
        "container_config": {"resources": {"requests": {"cpu": "2", "memory": "512Mi"},
                                           "limits": {"memory": "1Gi"}}},
    },
})


@dg.definitions
def defs() -> dg.Definitions:
    base = project_defs()
    documents = build_sharded_documents_job(k8s_executor)
    jobs = [j for j in base.jobs or () if getattr(j, "name", None) != "sharded_documents"]
    sensors = [s for s in base.sensors or () if s.name != "documents_fan_out_sensor"]
    return dg.Definitions(assets=base.assets, asset_checks=base.asset_checks, schedules=base.schedules,
                          sensors=[*sensors, build_documents_fan_out_sensor(documents)], resources=base.resources,
                          jobs=[*jobs, documents])
