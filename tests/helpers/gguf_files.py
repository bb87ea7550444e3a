"""Small GGUF files written for tests with the ``gguf`` package."""

from __future__ import annotations

import gguf


def save_gguf(writer: gguf.GGUFWriter) -> None:
    """Writes everything added to ``writer`` (header, metadata, tensors) and closes the file."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
