"""Excel worksheet functions of pyxl_del (xlwings); the functions are in udfs.del_udfs."""
