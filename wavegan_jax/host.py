"""What CPU this is: its model name and which instruction-set flags it has.

Shared by the benchmark's host record and `conv_impl='auto'`'s cache key,
so both read /proc/cpuinfo the same way.
"""

import os
import platform
from typing import Sequence


def cpu_and_flags(cpuinfo_path: str, wanted: Sequence[str]
                  ) -> tuple[str, list[str]]:
  """(CPU model name, the `wanted` flags present, in `wanted`'s order).

  Reads the first processor's fields ('flags' on x86, 'Features' on Arm);
  without the file, the name from `platform` and no flags.
  """
  cpu, present = platform.processor() or platform.machine(), set()
  if os.path.exists(cpuinfo_path):
    fields = {}
    with open(cpuinfo_path) as f:
      for line in f:
        if ":" in line:
          key, value = line.split(":", 1)
          fields.setdefault(key.strip(), value.strip())
    cpu = fields.get("model name", cpu)
    present = set((fields.get("flags", "") + " "
                   + fields.get("Features", "")).split())
  return cpu, [flag for flag in wanted if flag in present]
