"""The commit contract: records make files visible, names are idempotent, generations protect
the last good output, an output that is an input is refused, one writer at a time."""

import json
import os
import subprocess
import sys

import pyarrow as pa
import pytest

from raypipe.errors import RaypipeError
from raypipe.io import write_samples
from raypipe.io.dataset import begin_write, expand_inputs, open_dataset
from raypipe.io.lease import Lease
from raypipe.io.readers import iter_samples
from raypipe.schema import Sample

pytestmark = pytest.mark.unit


def table(ids):
    return pa.table({"id": pa.array(ids, pa.string())})


def sample(i: int) -> Sample:
    return Sample.from_dict({"functions": [], "messages": [{"role": "user", "content": f"q{i}"},
                                                           {"role": "assistant", "content": f"a{i}"}]})


def test_only_committed_files_are_visible_and_finalize_sweeps_leftovers(tmp_path):
    out = str(tmp_path / "ds")
    with begin_write(out, "t") as w:
        w.commit("a", data=table(["1", "2"]))
        orphan = tmp_path / "ds" / w.file_path("data", "dead-task")
        orphan.write_bytes(b"half a file")  # a task that died before its record
        during = open_dataset(out)  # before finalize: the committed part, marked incomplete
        assert [os.path.basename(p) for p in during.data] == [f"{w.generation}-a.parquet"]
        assert not during.complete
        w.finalize(rows_in=None, summary={})
    view = open_dataset(out)
    assert view.complete and [os.path.basename(p) for p in view.data] == [f"{w.generation}-a.parquet"]
    assert not orphan.exists()


def test_recommitting_a_name_overwrites_instead_of_adding(tmp_path):
    out = str(tmp_path / "ds")
    with begin_write(out, "t") as w:
        w.commit("batch", data=table(["1", "2"]))
        w.commit("batch", data=table(["1", "2"]))  # a retried task
        m = w.finalize(rows_in=2, summary={})
    assert m["rows_out"] == 2 and m["pending"] == 0 and len(open_dataset(out).data) == 1


def test_a_failed_rerun_leaves_the_last_good_output_readable(tmp_path):
    out = str(tmp_path / "ds")
    write_samples([sample(1), sample(2)], out)
    with pytest.raises(RuntimeError):
        with begin_write(out, "t") as w:
            w.commit("new", data=table(["x"]))
            raise RuntimeError("the re-run dies before finalize")
    assert [s.messages[0].content for s in iter_samples(out)] == ["q1", "q2"]
    write_samples([sample(3)], out)  # the next good run replaces it and sweeps the dead one
    assert [s.messages[0].content for s in iter_samples(out)] == ["q3"]
    assert len(os.listdir(tmp_path / "ds" / "data")) == 1


def test_an_unfinished_first_run_is_refused_by_readers_unless_allowed(tmp_path):
    out = str(tmp_path / "ds")
    with pytest.raises(KeyboardInterrupt):
        with begin_write(out, "t") as w:
            from raypipe.io.writers import SampleWriter

            sw = SampleWriter(w, "0")
            sw.add(sample(1))
            sw.finish()
            raise KeyboardInterrupt
    with pytest.raises(RaypipeError, match="incomplete dataset"):
        expand_inputs(out)
    assert [s.messages[0].content for s in iter_samples(out, allow_incomplete=True)] == ["q1"]


@pytest.mark.parametrize("given", ["{out}", "{out}/data", "{out}/data/*.parquet", "{parent}"])
def test_an_output_that_is_an_input_is_refused_before_anything_is_written(tmp_path, given):
    out = str(tmp_path / "ds")
    write_samples([sample(1)], out)
    before = sorted(os.listdir(tmp_path / "ds" / "data"))
    with pytest.raises(RaypipeError, match="the output is one of the inputs"):
        write_samples([sample(2)], out, inputs=[given.format(out=out, parent=str(tmp_path))])
    assert sorted(os.listdir(tmp_path / "ds" / "data")) == before
    assert [s.messages[0].content for s in iter_samples(out)] == ["q1"]


def test_one_writer_at_a_time_and_a_dead_writers_lease_is_taken_over(tmp_path):
    out = str(tmp_path / "ds")
    os.makedirs(out)
    with Lease(out, "first"):
        with pytest.raises(RaypipeError, match="another run is writing this folder"):
            write_samples([sample(1)], out)
    # A writer killed with its lease held: same host, process gone -> taken over at once.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / "ds" / "_lease.json").write_text(json.dumps(
        {"owner": "x", "host": os.uname().nodename, "pid": int(dead), "renewed_at": 9e18, "ttl_s": 120}))
    write_samples([sample(1)], out)
    assert not (tmp_path / "ds" / "_lease.json").exists()
