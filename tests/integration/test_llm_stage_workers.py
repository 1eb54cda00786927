"""Stages whose workers hold more than HTTP clients (a local model under test): the Ray resources
of the worker actors come from `LLMStage.actor_options()`, and a stage may have no "default"
endpoint (its `program` gets None) while its named endpoints are built by the worker, with the
executor's spend accounting."""

import os
import sys

import pyarrow as pa
import pytest
from ray import cloudpickle

from raypipe.io.dataset import read_committed
from raypipe.llm import LLMConfig, LLMStage, run_stage
from raypipe.mockllm.server import MockLLMServer

pytestmark = pytest.mark.integration

os.environ["RAYPIPE_TEST_WORKERS_KEY"] = "sk-test-workers-0000"  # set before the session's ray.init
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
ROWS = [{"id": f"r{i}", "q": f"question {i}"} for i in range(6)]


class AuxOnlyStage(LLMStage):
    """Asks its one endpoint, "aux", and records what the worker gave it."""

    name = "aux_only"
    reads = ("id", "q")

    def __init__(self, aux: LLMConfig, options: dict | None = None):
        super().__init__(config=None)
        self.aux, self.options = aux, options

    def llm(self) -> LLMConfig:
        return self.aux

    def llms(self) -> dict:
        return {"aux": self.aux}

    def actor_options(self) -> dict:
        return self.options if self.options is not None else super().actor_options()

    def source(self, *, use_ray=True, allow_incomplete=False):
        return ROWS

    def output_schema(self):
        return pa.schema([("id", pa.string()), ("answer", pa.string()), ("client", pa.string()),
                          ("cpus", pa.float64())])

    async def program(self, row, client):
        answer = await self.clients["aux"].chat([{"role": "user", "content": row["q"]}])
        cpus = -1.0  # in the driver's process (executor "local"): no actor, nothing assigned
        import ray

        if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0)
        return {"id": row["id"], "answer": answer.text, "client": repr(client), "cpus": cpus}


def aux_config(srv) -> LLMConfig:
    return LLMConfig(base_url=srv.base_url, model="aux", api_key_env="RAYPIPE_TEST_WORKERS_KEY", num_actors=1,
                     batch_size=3, concurrency=4, progress_interval_s=0, backoff_base_s=0.01)


def test_a_stage_without_a_default_endpoint_runs_on_its_named_clients(tmp_path):
    with MockLLMServer(responder=lambda body: "ok") as srv:
        summary = run_stage(AuxOnlyStage(aux_config(srv)), out=str(tmp_path / "out"), executor="local")
        served = srv.stats.requests
    rows = read_committed(str(tmp_path / "out")).to_pylist()
    assert sorted(r["id"] for r in rows) == [r["id"] for r in ROWS]
    assert {r["client"] for r in rows} == {"None"} and {r["answer"] for r in rows} == {"ok"}
    assert {r["cpus"] for r in rows} == {-1.0}  # in this process
    assert summary["requests"] == served == 6 and summary["completed"] == 6


def test_actor_options_give_the_worker_actors_their_resources(local_ray, tmp_path):
    with MockLLMServer(responder=lambda body: "ok") as srv:
        summary = run_stage(AuxOnlyStage(aux_config(srv), options={"num_cpus": 1}), out=str(tmp_path / "out"),
                            executor="ray")
    rows = read_committed(str(tmp_path / "out")).to_pylist()
    assert summary["completed"] == 6
    assert {r["cpus"] for r in rows} == {1.0}  # the default (actor_num_cpus 0) reserves none
