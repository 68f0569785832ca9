"""alignpipe.gpu.acquire_gpu: concurrent jobs get different devices. No GPU needed: fake counts."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from alignpipe import gpu
from alignpipe.gpu import acquire_gpu


@pytest.fixture(autouse=True)
def no_scheduler_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


class Holder(threading.Thread):
    """Holds a GPU in a thread until release() is called; .index is the device it got."""

    def __init__(self, lock_dir, device_count=2, **kwargs):
        super().__init__(daemon=True)
        self.args = (lock_dir, device_count)
        self.kwargs = dict(poll_seconds=0.02, **kwargs)
        self.index = None
        self.acquired = threading.Event()
        self._release = threading.Event()

    def run(self):
        with acquire_gpu(*self.args, **self.kwargs) as index:
            self.index = index
            self.acquired.set()
            self._release.wait(10)

    def release(self):
        self._release.set()
        self.join(10)


def _hold(lock_dir, device_count=2, **kwargs):
    holder = Holder(lock_dir, device_count, **kwargs)
    holder.start()
    assert holder.acquired.wait(5)
    return holder


def test_concurrent_holders_get_different_devices(tmp_path):
    a, b = _hold(tmp_path), _hold(tmp_path)
    assert {a.index, b.index} == {0, 1}
    a.release(), b.release()


def test_third_holder_waits_until_one_is_released(tmp_path):
    a, b = _hold(tmp_path), _hold(tmp_path)
    c = Holder(tmp_path)
    c.start()
    assert not c.acquired.wait(0.3), "got a GPU while both were held"
    b.release()
    assert c.acquired.wait(5)
    assert c.index == b.index
    a.release(), c.release()


def test_released_on_exit_and_on_error(tmp_path):
    with acquire_gpu(tmp_path, 1) as index:
        assert index == 0
    with pytest.raises(KeyError), acquire_gpu(tmp_path, 1):
        raise KeyError("job failed")
    with acquire_gpu(tmp_path, 1, timeout=0) as index:  # free again
        assert index == 0


def test_timeout_when_all_busy(tmp_path):
    a = _hold(tmp_path, 1)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="busy"), acquire_gpu(tmp_path, 1, poll_seconds=0.05, timeout=0.3):
        pass
    assert 0.25 < time.monotonic() - start < 3
    a.release()


def test_lock_is_exclusive_across_processes_and_dies_with_a_killed_holder(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from alignpipe.gpu import acquire_gpu
        with acquire_gpu({str(tmp_path)!r}, 2) as index:
            print(index, flush=True)
            time.sleep(60)
    """)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "0"
        with acquire_gpu(tmp_path, 2, timeout=0) as index:
            assert index == 1  # device 0 is the other process's
        with pytest.raises(TimeoutError), acquire_gpu(tmp_path, 1, timeout=0):
            pass
        proc.send_signal(signal.SIGKILL)  # crash: no clean-up code runs
        proc.wait(10)
        with acquire_gpu(tmp_path, 1, timeout=5, poll_seconds=0.05) as index:
            assert index == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_scheduler_assigned_devices_are_respected(tmp_path, monkeypatch):
    a = _hold(tmp_path, 1)  # would block everyone without the scheduler's choice
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with acquire_gpu(tmp_path, 1, timeout=0) as index:
        assert index == 0
    a.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu0.lock"]  # only the holder's


def test_device_count_defaults_to_torch(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "_visible_device_count", lambda: 2)
    a = _hold(tmp_path, None)
    with acquire_gpu(tmp_path, timeout=0) as index:
        assert {a.index, index} == {0, 1}
    a.release()
    monkeypatch.setattr(gpu, "_visible_device_count", lambda: 0)
    with pytest.raises(RuntimeError, match="no CUDA device"), acquire_gpu(tmp_path):
        pass


def test_torch_count_on_this_machine_is_used(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    holders = [_hold(tmp_path, None) for _ in range(3)]
    assert sorted(h.index for h in holders) == [0, 1, 2]
    for holder in holders:
        holder.release()


def test_lock_dir_is_created(tmp_path):
    lock_dir = tmp_path / "a" / "b"
    with acquire_gpu(lock_dir, 2) as index:
        assert index == 0 and (lock_dir / "gpu0.lock").exists()


# --------------------------------------------------------------------------- several jobs per GPU (issue 20 item 3)

def test_jobs_per_gpu_share_a_device(tmp_path):
    a, b = _hold(tmp_path, 1, jobs_per_gpu=2), _hold(tmp_path, 1, jobs_per_gpu=2)
    assert a.index == b.index == 0
    c = Holder(tmp_path, 1, jobs_per_gpu=2)
    c.start()
    assert not c.acquired.wait(0.3), "a third job got one of two slots"
    a.release()
    assert c.acquired.wait(5) and c.index == 0
    b.release(), c.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu0.1.lock", "gpu0.lock"]


def test_slots_spread_over_devices_before_sharing_one(tmp_path):
    holders = [_hold(tmp_path, 2, jobs_per_gpu=3) for _ in range(4)]
    assert [h.index for h in holders[:2]] == [0, 1]  # one job on each device first
    assert sorted(h.index for h in holders) == [0, 0, 1, 1]
    for holder in holders:
        holder.release()
    with pytest.raises(ValueError, match="jobs_per_gpu"), acquire_gpu(tmp_path, 1, jobs_per_gpu=0):
        pass


def test_one_job_per_gpu_keeps_its_lock_names(tmp_path):
    from alignpipe.gpu import slot_lock_name

    assert slot_lock_name(3) == "gpu3.lock" and slot_lock_name(3, 2) == "gpu3.2.lock"


# --------------------------------------------------------------------------- device: auto

def _record(device="cpu"):
    return {"device": device, "cpu_step_s": 0.001, "cuda_step_s": 0.002, "cpu_threads": 1, "members": 30,
            "timed_members": 30, "n": 100, "steps": 10, "gpu": "fake", "key": "k"}


def test_task_device_choice_measures_once_and_caches(tmp_path):
    from alignpipe.gpu import task_device_choice

    calls = []

    def measure(index):
        calls.append(index)
        time.sleep(0.3)  # long enough for the other job to wait on the task's lock
        return _record()

    cache = tmp_path / "results" / "t" / "device.json"
    results = []
    threads = [threading.Thread(target=lambda: results.append(task_device_choice(
        cache, measure, key="k", lock_dir=tmp_path / "locks", device_count=1))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert calls == [0] and sorted(r["cached"] for r in results) == [False, True]
    assert all(r["device"] == "cpu" for r in results)
    again = task_device_choice(cache, measure, key="k", lock_dir=tmp_path / "locks", device_count=1)
    assert again["cached"] and calls == [0]
    changed = task_device_choice(cache, lambda i: dict(_record("cuda"), key="other"), key="other",
                                 lock_dir=tmp_path / "locks", device_count=1)  # new settings: measured again
    assert changed["device"] == "cuda" and not changed["cached"]


def test_step_seconds_times_the_tasks_network_on_the_cpu(tiny_config):
    from alignlib.ensembles.data import make_task_data
    from alignlib.ensembles.step_timing import step_seconds
    from alignpipe.gpu import time_devices, timing_key

    cfg = tiny_config["tasks"]["digits_tiny"]
    data = make_task_data("digits_tiny", cfg)
    full = step_seconds(cfg, data, "cpu", steps=2, warmup=1)
    members = len(cfg["snr"]) * cfg["seeds"] * len(cfg["n"])
    assert full["members"] == full["timed_members"] == members and full["step_s"] > 0
    assert full["n"] == round(sum(cfg["n"]) / len(cfg["n"]))
    part = step_seconds(cfg, data, "cpu", steps=2, warmup=1, max_elements=full["n"] * 64 * 4)
    assert part["timed_members"] == 4 and part["members"] == members
    assert timing_key(cfg) == timing_key(dict(cfg)) != timing_key(dict(cfg, seeds=4))
    assert callable(time_devices)


def test_auto_without_cuda_is_the_cpu_and_measures_nothing(monkeypatch, tmp_path):
    import torch

    from alignpipe import jobs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu, "time_devices", lambda *a: pytest.fail("measured without CUDA"))
    timing = jobs.TaskTiming({"network": {}}, str(tmp_path / "data.nc"), str(tmp_path / "device.json"))
    with jobs.job_device("auto", timing=timing) as device:
        assert device.type == "cpu"
    assert not (tmp_path / "device.json").exists()


@pytest.mark.parametrize("choice", ["cpu", "cuda"])
def test_auto_follows_the_tasks_choice_and_logs_it(monkeypatch, tmp_path, choice):
    import io
    import json

    import torch

    from alignpipe import jobs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu, "_visible_device_count", lambda: 1)
    monkeypatch.setattr(gpu, "DEFAULT_LOCK_DIR", tmp_path / "locks")
    cfg = {"network": {"kind": "mlp"}, "n": [10]}
    cache = tmp_path / "device.json"
    cache.write_text(json.dumps(dict(_record(choice), key=gpu.timing_key(cfg))))
    log = io.StringIO()
    with jobs.job_device("auto", timing=jobs.TaskTiming(cfg, "unused", str(cache)), log=log) as device:
        assert device.type == choice
        if choice == "cuda":
            assert (tmp_path / "locks" / "gpu0.lock").exists()
    line = log.getvalue()
    assert f"device: auto -> {choice}" in line and "1.00 ms on the CPU" in line and "2.00 ms on the GPU" in line
    assert f"read from {cache}" in line
