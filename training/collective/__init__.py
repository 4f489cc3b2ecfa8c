"""The hosts as one job: XGBoost's collective, every call through one place, each recorded in the ledger."""
