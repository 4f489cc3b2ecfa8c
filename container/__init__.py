"""The SageMaker shell: reads the /opt/ml contract, runs ``training``, owns every outcome."""
