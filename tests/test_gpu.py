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
