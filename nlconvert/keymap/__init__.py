"""Weight-name tables: the declarative maps of ``weights_map/`` and the one engine applying them.

``weights_map/caffe2_blobs.toml`` maps Caffe2 blob names onto nlconvert's parameter names
(:mod:`nlconvert.convert.mapping` adds the loading rules: shapes, inflation, ignored blobs);
``weights_map/mmaction2.toml`` maps nlconvert's parameter names onto mmaction2's keys
(:mod:`nlconvert.interop.mmaction2`). A new target framework is one new table plus its module
builder.
"""

from .table import KeyRule, KeyTable, compile_template, load_table, tables_dir

__all__ = ["KeyRule", "KeyTable", "compile_template", "load_table", "tables_dir"]
