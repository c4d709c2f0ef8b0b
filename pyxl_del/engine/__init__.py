"""The engine: config, panel reading and validation, sufficient statistics (pandas, DuckDB or Spark), transition
matrices, calibration, forecast, DEL rates, portfolio; `pipeline.run` chains them. Imports no other layer."""
