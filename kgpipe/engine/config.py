"""The `executor:` block of a pipeline file: which engine runs a stage (in-process or on a Ray cluster) and with
what resources. It never changes what a stage writes, so it is not part of a stage's fingerprint."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field

Engine = Literal["local", "ray"]


class ExecutorConfig(BaseModel):
    """Pipeline-level `executor:`; a stage's own `executor:` overrides the keys it sets, and `kgpipe run --engine
    --address` overrides both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Engine = Field("local", description="local: in this process (today's behaviour); ray: on a Ray "
                                                "cluster, the driver (this process) on one of its nodes")
    address: str = Field("local", description="ray only. local: start Ray on this machine for the run; auto: the "
                                              "cluster this node belongs to (`ray start`, or RAY_ADDRESS); "
                                              "host:port: that cluster's head (GCS address). Ray Client (ray://) "
                                              "is refused: run the driver on a cluster node (`ray job submit`)")
    num_cpus: int | None = Field(None, ge=1, description="address local only: CPUs the local Ray may use")
    object_store_memory: ByteSize | None = Field(None, description="address local only: the object store's size "
                                                                   "(e.g. 2GB); spilled objects go to temp_dir")
    temp_dir: str | None = Field(None, description="address local only: Ray's own session and spill folder "
                                                   "(default /tmp/ray); never inside the workspace")
    resources: dict[str, float] = Field(default_factory=dict, description=(
        "what each task or actor of the stage asks for, besides one CPU: {GPU: 1} puts it on a GPU node; custom "
        "resources by name ({big_memory: 1})"))
    workers: int | None = Field(None, ge=1, description="actors in a stage's pool (extract); default: the "
                                                        "cluster's CPUs")
    max_restarts: int = Field(3, ge=0, description="times a dead actor is restarted (finite: a document that "
                                                   "kills its worker must not loop forever)")
    max_task_retries: int = Field(3, ge=0, description="times a task is retried after its worker died")
    timeout_s: float = Field(30.0, gt=0, description="seconds to wait for the cluster to answer (connect, "
                                                     "resource queries) before failing with exit 7")

    def with_overrides(self, overrides: dict[str, Any]) -> ExecutorConfig:
        """This config with the keys a stage (or the command line) set, validated again."""
        return ExecutorConfig.model_validate({**self.model_dump(exclude_unset=True), **overrides}) if overrides \
            else self
