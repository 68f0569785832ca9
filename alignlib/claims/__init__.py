"""The paper's claims as tests with a named statistic and null (:mod:`.claim_tests`, re-exported
here), their verdicts (:mod:`.verdicts`), the power of the claim-2 test (:mod:`.power`) and
tables with a known truth to calibrate them (:mod:`.calibration`)."""

from alignlib.claims.claim_tests import *  # noqa: F401,F403
