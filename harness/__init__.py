"""bench: the core harness. It knows no paper; methods arrive as plugins."""
__version__ = "0.1.0"


def results(suite, tracking_uri=None, **kwargs):
    """A suite's finished results as a pandas DataFrame (see
    :func:`harness.results_table.results`): ``harness.results("suites/quickstart.yaml")``."""
    from .results_table import results as _results

    return _results(suite, tracking_uri, **kwargs)
