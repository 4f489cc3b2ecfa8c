"""Benchmarks: ingest time and peak memory of our reader against common approaches (``make bench``).

``bench.run`` drives a run, ``bench.paths`` is the child process that measures one path,
``bench.scaling`` runs local multi-host jobs, ``bench.report`` writes the table, plot and doc.
"""
