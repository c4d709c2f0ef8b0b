"""Sheet layouts as plain data: what each sheet of a workbook holds (cells, styles, charts, page set-up), never
how a library writes it (pyxl_del.excel.render does that). Imports no openpyxl."""
