"""Statistics over ensembles: member resampling (:mod:`.members`), chance levels (:mod:`.chance`),
the interpolation threshold and the test-error peak (:mod:`.threshold`), and probe resampling for
any pair of representations (:mod:`.probes`, whose functions are re-exported here)."""

from alignlib.stats.probes import *  # noqa: F401,F403  (the public probe-resampling API)
from alignlib.stats.probes import __all__  # noqa: F401
