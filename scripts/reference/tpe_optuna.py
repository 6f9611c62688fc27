"""Reference values for crates/tune's Parzen estimators (tests/against_optuna.rs): Optuna's own
`_ParzenEstimator` (optuna/samplers/_tpe/parzen_estimator.py) with TPESampler's defaults —
prior weight 1, magic clip on, endpoints off, `default_weights`, univariate — fitted on fixed
observations of one field and evaluated at fixed points.

Numeric fields: observations and points as the field takes them (a log range's values, not
their logarithms: the estimator works in the logarithm and so does its density, as Optuna's).
Categorical fields: choice indices.

Usage (optuna from PyPI): python3 scripts/reference/tpe_optuna.py > crates/tune/tests/fixtures/optuna_parzen.json
"""
import json

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights

PARAMS = _ParzenEstimatorParameters(
    prior_weight=1.0, consider_magic_clip=True, consider_endpoints=False, weights=default_weights, multivariate=False
)


def case(name, dist, observed, points):
    pe = _ParzenEstimator({"x": np.asarray(observed, dtype=float)}, {"x": dist}, PARAMS)
    log_pdf = pe.log_pdf({"x": np.asarray(points, dtype=float)})
    out = {"name": name, "observed": list(map(float, observed)), "points": list(map(float, points)),
           "log_pdf": list(map(float, log_pdf))}
    if isinstance(dist, CategoricalDistribution):
        out["choices"] = len(dist.choices)
    else:
        out.update(low=dist.low, high=dist.high, log=dist.log)
    return out


def main():
    rng = np.random.default_rng(20261207)
    cases = []
    uniform = FloatDistribution(0.0, 2.0)
    grid = np.linspace(0.0, 2.0, 21)
    cases.append(case("uniform, no observation (the prior alone)", uniform, [], grid))
    cases.append(case("uniform, one observation", uniform, [0.3], grid))
    cases.append(case("uniform, three observations", uniform, [1.7, 0.2, 0.25], grid))
    cases.append(case("uniform, 30 observations (weights ramp up for the oldest 5)", uniform,
                      np.round(rng.uniform(0.0, 2.0, 30), 4), grid))
    log = FloatDistribution(1e-5, 1.0, log=True)
    log_points = np.exp(np.linspace(np.log(1e-5), 0.0, 17))
    cases.append(case("log range, four observations", log, [3e-3, 1e-4, 5e-3, 0.2], log_points))
    cases.append(case("log range, 12 observations", log, np.exp(rng.uniform(np.log(1e-5), 0.0, 12)), log_points))
    cat = CategoricalDistribution([0.1, 0.5, 1.0, 5.0])
    cases.append(case("choice of four, five observations", cat, [2, 2, 0, 3, 2], [0, 1, 2, 3]))
    cases.append(case("choice of four, no observation", cat, [], [0, 1, 2, 3]))
    print(json.dumps({"optuna": optuna.__version__, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
