"""Task data: the shared training-input pool, probe set, clean test set (and teacher).

Training inputs are nested: the set for sample size n is the first n rows of one
pool fixed per task, so every member at (snr, n) sees the same inputs and growing n
only adds samples. Noise is not stored here; it is drawn per member (alignlib.ensembles.noise).

Regression data sets hold ``train_y``/``test_y`` (sample, output); classification
ones hold integer ``train_label``/``test_label`` and the attribute ``classes``.
The attribute ``target_variance`` is Var(clean target), used by the SNR definitions;
``input_variance`` is the mean per-feature variance of the clean training inputs.

With a task's ``ood`` section the data set also holds ``ood_x`` (ood_probe, feature): a
second, shifted probe set (:func:`ood_inputs`). It is drawn from streams of its own, so every
other variable is bit-identical with and without it, except for ``kind: extrapolate``, whose
OOD patients are taken out of the real data set before the usual split.
"""

from __future__ import annotations

import numpy as np

from alignlib._extras import pipeline_import  # noqa: E402

xr = pipeline_import("xarray", __name__)

from alignlib import __version__
from alignlib.seeding import stream
from alignlib.ensembles.datasets import OOD_KINDS, SYNTHETIC
from alignlib.ensembles.image_files import load_cifar10, load_mnist


def _assemble(train_x, probe_x, test_x, *, train_y=None, test_y=None, train_label=None, test_label=None,
              classes=None, target_variance=None, target_variance_definition="", image_shape=None) -> xr.Dataset:
    variables = {
        "train_x": (("sample", "feature"), np.asarray(train_x, np.float64)),
        "probe_x": (("probe", "feature"), np.asarray(probe_x, np.float64)),
        "test_x": (("test_sample", "feature"), np.asarray(test_x, np.float64)),
    }
    attrs = {"input_variance": float(np.asarray(train_x).var(axis=0).mean())}
    if train_label is None:
        variables["train_y"] = (("sample", "output"), np.asarray(train_y, np.float64))
        variables["test_y"] = (("test_sample", "output"), np.asarray(test_y, np.float64))
        attrs["target"] = "regression"
        if target_variance is None:
            target_variance = float(np.asarray(train_y).var(axis=0).mean())
            target_variance_definition = "variance of the clean training-pool targets (mean over outputs)"
    else:
        variables["train_label"] = (("sample",), np.asarray(train_label, np.int64))
        variables["test_label"] = (("test_sample",), np.asarray(test_label, np.int64))
        attrs["target"] = "classification"
        attrs["classes"] = int(classes)
        onehot = np.eye(classes)[np.asarray(train_label)]
        target_variance = float(onehot.var(axis=0).mean())
        target_variance_definition = "variance of the one-hot training-pool targets (mean over classes)"
    attrs["target_variance"] = float(target_variance)
    attrs["target_variance_definition"] = target_variance_definition
    if image_shape is not None:
        attrs["image_shape"] = list(image_shape)
    return xr.Dataset(variables, attrs=attrs)




def ood_probe_count(cfg: dict) -> int:
    """How many OOD probes a task has: ``ood.probes``, else as many as in-distribution probes."""
    return int(cfg["ood"].get("probes") or cfg["probes"])


def unit_direction(rng: np.random.Generator, d: int) -> np.ndarray:
    """A uniformly random unit vector of R^d."""
    u = rng.standard_normal(d)
    return u / np.linalg.norm(u)


def ood_inputs(task: str, cfg: dict, ds: xr.Dataset) -> np.ndarray:
    """The task's OOD probes (ood_probes, feature) for the kinds that leave the split alone.

    Synthetic data (x ~ N(0, I_d)), fresh draws of the ``ood_inputs`` stream z ~ N(0, I_d):
      scale: factor * z (covariance factor^2 I); shift: z + factor * u, u a fixed random unit
      direction (stream ``ood_direction``): the mean moves by factor standard deviations along u.
    Real data (standardised on the pool), the first ``ood.probes`` in-distribution probes p:
      scale: factor * p (covariance about the pool mean rescaled by factor^2);
      shift: p + factor * s_u * u with s_u the pool's standard deviation along u;
      noise (images): p + factor * s * e per pixel, e ~ N(0, 1) (stream ``ood_noise``) and s the
      pixel's standard deviation over the pool (1 after standardisation, 0 for a constant pixel).
    """
    ood, kind = cfg["ood"], cfg["dataset"]["kind"]
    factor, k, seed = float(ood.get("factor", 2.0)), ood_probe_count(cfg), cfg["base_seed"]
    d = ds.sizes["feature"]
    if ood["kind"] not in OOD_KINDS.get(kind, ()):
        raise ValueError(f"tasks.{task}.ood.kind: {ood['kind']!r} is not available for data set {kind!r}; "
                         f"available: {list(OOD_KINDS.get(kind, ()))}")
    if kind in SYNTHETIC:
        z = stream(seed, task, "ood_inputs").standard_normal((k, d))
        if ood["kind"] == "scale":
            return factor * z
        return z + factor * unit_direction(stream(seed, task, "ood_direction"), d)
    probes = ds["probe_x"].values
    if k > len(probes):
        raise ValueError(f"tasks.{task}.ood.probes: {k} exceeds the {len(probes)} in-distribution probes that "
                         f"kind {ood['kind']!r} transforms")
    p = probes[:k]
    train_x = ds["train_x"].values
    if ood["kind"] == "scale":
        return factor * p
    if ood["kind"] == "shift":
        u = unit_direction(stream(seed, task, "ood_direction"), d)
        return p + factor * float((train_x @ u).std()) * u
    if ood["kind"] == "noise":
        e = stream(seed, task, "ood_noise").standard_normal(p.shape)
        return p + factor * train_x.std(axis=0) * e
    raise ValueError(f"tasks.{task}.ood.kind: {ood['kind']!r} is drawn with the split, not here")


def ood_feature_index(task: str, feature, names) -> int:
    """Column of ``ood.feature`` (an index or one of the data set's feature names)."""
    if isinstance(feature, str):
        if feature not in names:
            raise ValueError(f"tasks.{task}.ood.feature: {feature!r} is not a feature; known: {list(names)}")
        return list(names).index(feature)
    if not 0 <= int(feature) < len(names):
        raise ValueError(f"tasks.{task}.ood.feature: {feature} is not a column index in [0, {len(names)})")
    return int(feature)


def extrapolation_split(task: str, cfg: dict, x: np.ndarray, order: np.ndarray, names) -> tuple[np.ndarray, np.ndarray]:
    """``ood: {kind: extrapolate}``: the ood.probes samples with the largest values of ``ood.feature``
    (ood_idx) and the rest of ``order`` (the seeded split order) without them."""
    f = ood_feature_index(task, cfg["ood"].get("feature", "bmi"), names)
    k = ood_probe_count(cfg)
    ranked = np.argsort(-x[:, f], kind="stable")
    if k >= len(x):
        raise ValueError(f"tasks.{task}.ood.probes: {k} leaves no sample of the {len(x)} for the split")
    if x[ranked[k - 1], f] <= x[ranked[k], f]:
        raise ValueError(f"tasks.{task}.ood.probes: the {k}th largest value of feature {names[f]!r} is tied with "
                         f"the next one, so the OOD patients would not all lie above the pool; choose another count")
    ood_idx = ranked[:k]
    rest = order[~np.isin(order, ood_idx)]
    return ood_idx, rest


def gaussian_linear(task: str, cfg: dict) -> xr.Dataset:
    """x ~ N(0, I_d); y = teacher . x with a fixed unit-norm teacher, so Var(y) = 1."""
    d, seed = cfg["dataset"]["dim"], cfg["base_seed"]
    teacher = stream(seed, task, "teacher").standard_normal(d)
    teacher /= np.linalg.norm(teacher)
    train_x = stream(seed, task, "train_inputs").standard_normal((max(cfg["n"]), d))
    probe_x = stream(seed, task, "probe_inputs").standard_normal((cfg["probes"], d))
    test_x = stream(seed, task, "test_inputs").standard_normal((cfg["test_size"], d))
    ds = _assemble(train_x, probe_x, test_x, train_y=(train_x @ teacher)[:, None],
                   test_y=(test_x @ teacher)[:, None], target_variance=float(teacher @ teacher),
                   target_variance_definition="population Var(teacher . x) = |teacher|^2")
    ds["teacher"] = ("feature", teacher)
    return ds


def teacher_mlp(task: str, cfg: dict) -> xr.Dataset:
    """x ~ N(0, I_d) through a fixed random two-layer ReLU teacher.

    Regression: the teacher's single output. Classification: the argmax of its `classes`
    outputs, each centred on its mean over the pool so that no class is empty.
    """
    dcfg, seed = cfg["dataset"], cfg["base_seed"]
    d, h = dcfg["dim"], dcfg["teacher_hidden"]
    classify = dcfg["target"] == "classification"
    out = dcfg["classes"] if classify else 1
    rng = stream(seed, task, "teacher")
    w1 = rng.standard_normal((h, d)) / np.sqrt(d)
    w2 = rng.standard_normal((out, h)) * np.sqrt(2.0 / h)
    inputs = {role: stream(seed, task, f"{role}_inputs").standard_normal((size, d))
              for role, size in (("train", max(cfg["n"])), ("probe", cfg["probes"]), ("test", cfg["test_size"]))}
    reference = stream(seed, task, "reference_inputs").standard_normal((20000, d))

    def teacher(x):
        return np.maximum(x @ w1.T, 0.0) @ w2.T

    centre = teacher(reference).mean(axis=0)
    if classify:
        return _assemble(inputs["train"], inputs["probe"], inputs["test"],
                         train_label=np.argmax(teacher(inputs["train"]) - centre, axis=1),
                         test_label=np.argmax(teacher(inputs["test"]) - centre, axis=1), classes=out)
    scale = teacher(reference).std()
    return _assemble(inputs["train"], inputs["probe"], inputs["test"],
                     train_y=(teacher(inputs["train"]) - centre) / scale,
                     test_y=(teacher(inputs["test"]) - centre) / scale,
                     target_variance=1.0,
                     target_variance_definition="population variance of the standardised teacher output (1)")


def _split_real(task, cfg, x, *, y=None, labels=None, classes=None, image_shape=None, feature_names=None):
    """A fixed seeded split: probes, test set, then the training pool; standardised on the pool.

    ``ood: {kind: extrapolate}``: the OOD patients are taken out first (extrapolation_split) and
    the same seeded order, without them, is split as usual; they are stored as ``ood_x``.
    """
    order = stream(cfg["base_seed"], task, "split").permutation(len(x))
    ood_idx = None
    if (cfg.get("ood") or {}).get("kind") == "extrapolate":
        names = feature_names if feature_names is not None else [str(i) for i in range(x.shape[1])]
        ood_idx, order = extrapolation_split(task, cfg, x, order, names)
    n_total = len(order)
    probes, test = cfg["probes"], cfg["test_size"]
    pool = cfg["dataset"].get("pool") or (n_total - probes - test)
    if probes + test + pool > n_total:
        raise ValueError(f"tasks.{task}: probes ({probes}) + test_size ({test}) + pool ({pool}) exceed the "
                         f"{n_total} samples of data set {cfg['dataset']['kind']!r}")
    i_probe, i_test, i_train = order[:probes], order[probes:probes + test], order[probes + test:probes + test + pool]
    mean, std = x[i_train].mean(axis=0), x[i_train].std(axis=0)
    std = np.where(std > 0, std, 1.0)  # constant pixels stay 0 instead of dividing by 0
    xs = (x - mean) / std
    if labels is not None:
        ds = _assemble(xs[i_train], xs[i_probe], xs[i_test], train_label=labels[i_train],
                       test_label=labels[i_test], classes=classes, image_shape=image_shape)
    else:
        y = (y - y[i_train].mean(axis=0)) / y[i_train].std(axis=0)
        ds = _assemble(xs[i_train], xs[i_probe], xs[i_test], train_y=y[i_train], test_y=y[i_test])
    if ood_idx is not None:
        ds["ood_x"] = (("ood_probe", "feature"), xs[ood_idx])
    return ds


def digits(task: str, cfg: dict) -> xr.Dataset:
    """scikit-learn's bundled UCI digits: 1797 images of 8x8 pixels, 10 classes."""
    from sklearn.datasets import load_digits  # here: scikit-learn is slow to import and only these two tasks use it

    bunch = load_digits()
    return _split_real(task, cfg, bunch.data.astype(np.float64), labels=bunch.target, classes=10,
                       image_shape=(1, 8, 8))


def diabetes(task: str, cfg: dict) -> xr.Dataset:
    """scikit-learn's bundled diabetes data: 442 patients, 10 features, a disease-progression target."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    return _split_real(task, cfg, bunch.data.astype(np.float64), y=bunch.target.astype(np.float64)[:, None],
                       feature_names=list(bunch.feature_names))


def _image_set(task, cfg, files):
    """MNIST/CIFAR-10: probes and test set from the official test split, the pool from the training split."""
    train_x = files["train_images"].reshape(len(files["train_images"]), -1).astype(np.float64) / 255.0
    test_x = files["test_images"].reshape(len(files["test_images"]), -1).astype(np.float64) / 255.0
    image_shape = files["train_images"].shape[1:] if files["train_images"].ndim == 4 else (1, *files["train_images"].shape[1:])
    probes, test = cfg["probes"], cfg["test_size"]
    if probes + test > len(test_x):
        raise ValueError(f"tasks.{task}: probes + test_size ({probes + test}) exceed the {len(test_x)} test images")
    pool = cfg["dataset"].get("pool") or len(train_x)
    i_train = stream(cfg["base_seed"], task, "split").permutation(len(train_x))[:pool]
    i_test = stream(cfg["base_seed"], task, "split_test").permutation(len(test_x))
    mean, std = train_x[i_train].mean(axis=0), train_x[i_train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    norm = lambda a: (a - mean) / std  # noqa: E731
    return _assemble(norm(train_x[i_train]), norm(test_x[i_test[:probes]]), norm(test_x[i_test[probes:probes + test]]),
                     train_label=files["train_labels"][i_train], test_label=files["test_labels"][i_test[probes:probes + test]],
                     classes=10, image_shape=image_shape)


def mnist(task: str, cfg: dict) -> xr.Dataset:
    return _image_set(task, cfg, load_mnist(cfg["dataset"]["path"]))


def cifar10(task: str, cfg: dict) -> xr.Dataset:
    return _image_set(task, cfg, load_cifar10(cfg["dataset"]["path"]))


OOD_DEFINITIONS = {
    "scale": "inputs with their covariance (about the training mean) rescaled by factor^2",
    "shift": "inputs with their mean shifted by factor standard deviations along a fixed random direction",
    "noise": "probe images plus Gaussian pixel noise of std factor x the pixel's std over the pool",
    "extrapolate": "the patients with the largest values of one feature, outside the pool's range of it",
}

DATASETS = {"gaussian_linear": gaussian_linear, "teacher_mlp": teacher_mlp, "digits": digits,
            "diabetes": diabetes, "mnist": mnist, "cifar10": cifar10}


def make_task_data(task: str, cfg: dict) -> xr.Dataset:
    """Build the data set of one task from its (validated) config section."""
    kind = cfg["dataset"]["kind"]
    if kind not in DATASETS:
        raise ValueError(f"tasks.{task}.dataset.kind: unknown data set {kind!r}; known: {sorted(DATASETS)}")
    ds = DATASETS[kind](task, cfg)
    n_max = max(cfg["n"])
    if ds.sizes["sample"] < n_max:
        raise ValueError(
            f"tasks.{task}.n: the largest n ({n_max}) exceeds the {ds.sizes['sample']} "
            f"training samples available in data set {kind!r}"
        )
    ds.attrs.update(task=task, dataset=kind, alignlib_version=__version__)
    return ds


def ood_probe_set(task: str, cfg: dict, data: xr.Dataset) -> xr.Dataset:
    """The task's OOD probes (``ood_x``: ood_probe x feature) and their description (``ood_*``
    attributes), from its config's ``ood`` section and its data set: drawn by :func:`ood_inputs`,
    or, for kind ``extrapolate``, the patients the split set aside (``data``'s ``ood_x``)."""
    ood = cfg["ood"]
    ood_x = data["ood_x"].values if "ood_x" in data else ood_inputs(task, cfg, data)
    out = xr.Dataset({"ood_x": (("ood_probe", "feature"), ood_x)},
                     attrs=dict(task=task, ood_kind=ood["kind"], ood_factor=float(ood.get("factor", 2.0)),
                                ood_definition=OOD_DEFINITIONS[ood["kind"]], alignlib_version=__version__))
    if ood["kind"] == "extrapolate":
        out.attrs["ood_feature"] = str(ood.get("feature", "bmi"))
    return out
