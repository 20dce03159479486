"""A stand-in that hides hiredis: ``run.py --variant no-hiredis=bench/variants/no-hiredis``
puts this directory first on the worker's and the client's PYTHONPATH, so redis-py falls
back to its pure-Python reply parser (it imports hiredis inside ``try/except ImportError``),
and the bench measures kubeq with and without hiredis in one interleaved run."""

raise ImportError("hiredis hidden by bench/variants/no-hiredis for an A/B")
