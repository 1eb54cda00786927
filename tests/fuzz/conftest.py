import pytest
from hypothesis import HealthCheck, settings

CI_EXAMPLES = 200


@pytest.fixture(scope="session")
def fuzz_settings(request):
    """Hypothesis settings for one fuzz test: CI_EXAMPLES examples derandomized (the same every
    CI run), or `--fuzz-examples N` with random seeds."""
    given = request.config.getoption("--fuzz-examples")
    return settings(
        max_examples=given or CI_EXAMPLES,
        derandomize=given is None,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
