#!/usr/bin/env python3
"""Writes gguf_py_small.gguf with gguf-py's GGUFWriter (an independent writer):
every value type, a nested array, alignment 64, three tensors.
Usage: PYTHONPATH=<llama.cpp>/gguf-py python3 gen_gguf_py_small.py"""
import numpy as np
import gguf
from gguf import GGUFValueType as T

w = gguf.GGUFWriter("gguf_py_small.gguf", "llama")
w.add_custom_alignment(64)
w.add_key_value("t.u8", 200, T.UINT8)
w.add_key_value("t.i8", -100, T.INT8)
w.add_key_value("t.u16", 60000, T.UINT16)
w.add_key_value("t.i16", -30000, T.INT16)
w.add_key_value("t.u32", 4000000000, T.UINT32)
w.add_key_value("t.i32", -2000000000, T.INT32)
w.add_key_value("t.f32", 0.25, T.FLOAT32)
w.add_key_value("t.bool", True, T.BOOL)
w.add_key_value("t.str", "héllo ✓", T.STRING)
w.add_key_value("t.u64", 2**64 - 1, T.UINT64)
w.add_key_value("t.i64", -2**63, T.INT64)
w.add_key_value("t.f64", -2.5e300, T.FLOAT64)
w.add_array("t.tokens", ["a", "", "Ġthe"])
w.add_array("t.ints", [1, -2, 3])
w.add_array("t.nested", [[1, 2], [3]])
w.add_tensor("w", np.arange(16, dtype=np.float32).reshape(2, 8))
w.add_tensor("h", np.arange(64, dtype=np.float16))
w.add_tensor("q", np.arange(34 * 2, dtype=np.uint8).reshape(2, 34), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
