"""Local mode: the very same container program for N simulated hosts on this machine.

- :mod:`launch.local.services`: the stand-ins (an embedded Snowflake, fakesnow's server reached by
  the unmodified connector; a moto server for Secrets Manager), started and stopped together.
- :mod:`launch.local.snowflake_server`: that embedded Snowflake server, made faithful where the job notices.
- :mod:`launch.local.hosts`: the SageMaker host emulator (one ``/opt/ml`` tree and one
  ``python -m container train`` process per host, log pumps, the stop grace period, results).
- :mod:`launch.local.demo`: the demo job (``python -m launch train --local``) on seeded tables.
- :mod:`launch.local.tuning`: the local tuning search (Optuna over the same space).
"""
