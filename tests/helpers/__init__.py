"""What the tests share, in one place: data and model writers (data.py, model_parts.py, the benchmarks' and recipes'
official layouts in eval_fixtures.py and recipe_fixtures.py), tiny training runs and probes (training.py), recipe
launches (recipe_runs.py), a server under test (serve.py), a stub judge (judge.py) and fuzzing strategies.
Fixtures built from them are in conftest.py."""
