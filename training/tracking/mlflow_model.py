"""The MLflow model's code file ("models from code"): MLflow runs it to build the model on load.

Calling ``set_model`` when this file runs is MLflow's contract for such a file; nothing else
imports it. The model itself is :class:`training.tracking.pyfunc.TableModel`.
"""

from mlflow.models import set_model

from training.tracking.pyfunc import TableModel

set_model(TableModel())
