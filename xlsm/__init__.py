"""Build tooling for the Excel front end (``xlsm/pyxl_del.xlsm``); see xlsm/README.md."""
