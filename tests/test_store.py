"""alignpipe.store: the member store, and a train job's model file from it (models_for_ns): stored
members taken as they are, the missing members of all the job's n trained (per n on the CPU, or in
buckets of several n) and stored."""
import io

import numpy as np
import pytest
import xarray as xr
from tiny_linear import tiny_linear

from alignpipe.store import MemberStore, member_key, models_at_n, models_for_ns

TASK = "linear_regression"
NS = (7, 10, 14)


def _cfg(seeds=2, snrs=(0.3, 3.0)):
    cfg, data, _ = tiny_linear()
    return dict(cfg, seeds=seeds, snr=list(snrs)), data


def test_a_job_trains_its_missing_members_and_keeps_the_stored_ones_byte_for_byte(tmp_path):
    cfg, data = _cfg()
    store = MemberStore(tmp_path / "store")
    first = models_for_ns(TASK, cfg, data, NS, "cpu", store, log=io.StringIO())
    assert list(first["n"].values) == list(NS) and dict(first["param0"].sizes)["seed"] == 2
    assert sorted(p.name for p in (tmp_path / "store" / "n10").iterdir()) == ["snr0.3.nc", "snr3.0.nc"]
    grown, log = dict(cfg, seeds=3, snr=[0.3, 3.0, 30.0]), io.StringIO()
    second = models_for_ns(TASK, grown, data, NS, "cpu", store, log=log)
    for n in NS:  # 2 SNRs x 2 seeds stored; a seed at each of them and a whole SNR (3 seeds) new
        assert f"[{TASK} n={n}] 4 member(s) from the store, 5 to train" in log.getvalue()
    old = second.sel(snr=[0.3, 3.0], seed=[0, 1])
    for name in first.data_vars:
        assert old[name].values.tobytes() == first[name].values.tobytes(), name
    log = io.StringIO()
    again = models_for_ns(TASK, grown, data, NS, "cpu", store, log=log)
    assert "9 member(s) from the store, 0 to train" in log.getvalue() and "done" not in log.getvalue()
    xr.testing.assert_identical(again, second)


def test_the_model_file_does_not_depend_on_the_grouping_of_n_beyond_summation_order(tmp_path):
    """Per n (the CPU's) and in one bucket of 7, 10, 14 (an accelerator's): the same members to 1e-10;
    each stored under its own n and key."""
    cfg, data = _cfg()
    per_n = models_for_ns(TASK, cfg, data, NS, "cpu", None, log=io.StringIO(), grouping="per_n")
    store, log = MemberStore(tmp_path / "store"), io.StringIO()
    bucket = models_for_ns(TASK, cfg, data, NS, "cpu", store, log=log, grouping="ratio")
    assert f"[{TASK} n=7-10-14] done" in log.getvalue()
    for name in per_n.data_vars:
        np.testing.assert_allclose(bucket[name].values, per_n[name].values, rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(bucket["steps"].values, per_n["steps"].values)
    for n in NS:
        stored = store.load(n, 3.0, member_key(TASK, cfg, data, n))
        np.testing.assert_array_equal(stored[1]["param1"], bucket["param1"].sel(n=n, snr=3.0, seed=1).values)


def test_models_at_n_is_models_for_ns_of_one_n(tmp_path):
    cfg, data = _cfg(seeds=2, snrs=(3.0,))
    one = models_at_n(TASK, cfg, data, 10, "cpu", None, log=io.StringIO())
    xr.testing.assert_identical(one, models_for_ns(TASK, cfg, data, [10], "cpu", None, log=io.StringIO()))
    _, _, reference = tiny_linear()  # the same member trained in the tiny grid (3 SNRs, 3 seeds, n = 7)
    seven = models_at_n(TASK, cfg, data, 7, "cpu", None, log=io.StringIO())
    np.testing.assert_allclose(seven["param0"].sel(n=7, snr=3.0, seed=1).values,
                               reference["param0"].sel(snr=3.0, n=7, seed=1).values, rtol=0, atol=1e-10)


def test_a_member_of_other_settings_or_data_is_not_taken(tmp_path):
    cfg, data = _cfg()
    store = MemberStore(tmp_path / "store")
    models_for_ns(TASK, cfg, data, [7], "cpu", store, log=io.StringIO())
    other = dict(cfg, training=dict(cfg["training"], lr=0.5))
    assert member_key(TASK, other, data, 7) != member_key(TASK, cfg, data, 7)
    log = io.StringIO()
    models_for_ns(TASK, other, data, [7], "cpu", store, log=log)
    assert "0 member(s) from the store, 4 to train" in log.getvalue()
    (tmp_path / "store" / "n7" / "snr3.0.nc").write_bytes(b"not a netCDF file")
    assert store.load(7, 3.0, member_key(TASK, other, data, 7)) == {}
    with pytest.raises(KeyError):
        store.load(7, 0.3, member_key(TASK, cfg, data, 7))[5]
