"""alignpipe.timing: the job clock's line and the thread settings."""
import io
import json
import os

from alignpipe.timing import TAG, JobClock, job_clock, parse_timing, set_threads


def test_job_clock_writes_one_parseable_line(tmp_path):
    log = io.StringIO()
    with job_clock(log, threads=1) as clock:
        with clock.numerics():
            with clock.numerics():  # nested blocks count once
                sum(range(10_000))
        outside = clock.numerics_s
    record = parse_timing("noise\n" + log.getvalue())
    assert log.getvalue().startswith(TAG) and record["threads"] == 1
    assert record["numerics_s"] == round(outside, 3) <= record["in_script_s"]
    assert record["process_s"] is None or record["process_s"] >= record["in_script_s"]
    assert json.loads(JobClock(2).line()[len(TAG):])["threads"] == 2
    assert parse_timing("no timing here") is None


def test_set_threads_sets_torch_and_blas(single_torch_thread, monkeypatch):
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                 "NUMEXPR_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    before = {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()}
    try:
        set_threads(2)
        assert torch.get_num_threads() == 2
        assert all(pool["num_threads"] == 2 for pool in threadpool_info() if pool["user_api"] == "blas")
        assert os.environ["OMP_NUM_THREADS"] == "2"
        set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        for pool in threadpool_info():
            threadpool_limits(limits={pool["prefix"]: before.get(pool["filepath"], pool["num_threads"])})
