"""Benchmarks: ingest time and peak memory of our reader, and throughput and peak memory of our batch
scoring job, against common approaches (``make bench``).

``bench.run`` drives a run, ``bench.paths`` is the child process that measures one ingest path,
``bench.scoring`` and ``bench.score_paths`` do the same for scoring, ``bench.child`` runs a child,
``bench.scaling`` runs local multi-host jobs, ``bench.report`` writes the tables and plot, ``bench.doc`` the doc.
"""
