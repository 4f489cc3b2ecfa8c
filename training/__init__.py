"""Train XGBoost on a Snowflake table: the plain library that runs on every training host.

It never imports ``container`` (the SageMaker shell) or ``launch`` (the laptop side).
"""

__version__ = "0.1.0"
