"""The Kubernetes example (deploy/k8s/) as far as it runs without a cluster: its definitions load
with dagster-k8s's executor replaced by a stand-in, its job is the project's sharded documents
job, and its run config and Helm values say what docs/scaling.md says."""

from __future__ import annotations

import importlib
import sys
import types

import dagster as dg
import yaml

from pipeline.config.settings import PROJECT_ROOT

K8S = PROJECT_ROOT / "deploy" / "k8s"


def test_the_k8s_definitions_build_the_sharded_documents_job_on_the_k8s_executor(monkeypatch):
    configured = {}

    class StandIn:  # dagster_k8s.k8s_job_executor: records its configuration, runs nothing here
        @staticmethod
        def configured(config):
            configured.update(config)
            return dg.in_process_executor

    monkeypatch.setitem(sys.modules, "dagster_k8s", types.SimpleNamespace(k8s_job_executor=StandIn))
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    module = importlib.import_module("deploy.k8s.definitions_k8s")
    k8s_defs = module.defs()
    job = k8s_defs.resolve_job_def("sharded_documents")
    # the fan-out sensor of the location launches this job, not the one-machine one
    sensor = k8s_defs.resolve_sensor_def("documents_fan_out_sensor")
    assert [t.job_def for t in sensor.targets] == [job]
    assert len(k8s_defs.resolve_all_job_defs()) == len({j.name for j in k8s_defs.resolve_all_job_defs()})
    assert [n.name for n in job.all_node_defs] == ["documents_snapshot", "documents_shard", "documents_collect"]
    assert job.partitions_def is not None
    assert configured["volume_mounts"] == [{"name": "dunning-data", "mountPath": "/data"}]
    assert configured["step_k8s_config"]["container_config"]["resources"]["requests"] == {"cpu": "2",
                                                                                       "memory": "512Mi"}
    # the run config of the example is valid for the job
    run_config = yaml.safe_load((K8S / "job_config.yaml").read_text())
    assert dg.validate_run_config(job, run_config)["ops"]["documents_snapshot"]["config"] == {"shards": 16}


def test_the_helm_values_run_the_k8s_definitions_with_the_shared_volume():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "deploy.k8s.definitions_k8s", "--attribute", "defs"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    claims = {v["persistentVolumeClaim"]["claimName"] for v in deployment["volumes"]}
    assert claims == {v["persistentVolumeClaim"]["claimName"]
                      for v in values["runLauncher"]["config"]["k8sRunLauncher"]["volumes"]} == {"dunning-data"}
    assert "dagster-k8s==0.29.27" in (K8S / "Dockerfile").read_text()
    assert "dagster==1.13.27" in (PROJECT_ROOT / "pyproject.toml").read_text()  # the matching release
