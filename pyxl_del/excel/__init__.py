"""Excel: the openpyxl renderer, workbook access (a file or live Excel through xlwings), the file's zip parts,
the engine side of the worksheet functions, the ribbon's buttons and the drill-down."""
