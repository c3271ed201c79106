"""Section 5: where a train step's time goes, per part of the model.

The step runs a few times under `jax.profiler.trace`; every traced XLA op
is matched, by its instruction name, to the `op_name` metadata of the
compiled HLO (the JAX/Flax source path: 'jit(_step)/transpose(jvp(
VisualModel.encode))/VisualModel.features/VisualModel._frame_features/
conv_layers_1/conv_general_dilated'), and the ops' time is summed per pass
(forward, or backward when the path passes a `transpose(...)`) and model
part (the first `depth` components of the path; see `model_part`).

Only leaf ops count: loops, conditionals and calls are left out (their
bodies' ops are timed), and so is any op whose span holds another op of the
same thread. On a CPU "op time" sums
over the threads that ran ops, so op time / wall time says how many cores
the step kept busy; ops that spread their own work over pool threads count
once.
"""

import collections
import glob
import os
import re
import tempfile
import time
from typing import Any, Callable, Sequence

import jax

NO_METADATA = "(no metadata)"

# Path components that are control flow, not model parts.
_CONTROL = re.compile(
    r"^(?:while|body|cond|closed_call|branch_\d+|checkpoint)$")
# A transformation around a name: 'transpose(jvp(VisualModel.encode))'.
_WRAPPED = re.compile(r"^[\w.]+\((.*)\)$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+) \(.*\{\s*$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
# An instruction's kind: its name without the '.N' XLA numbers it by.
_KIND = re.compile(r"\.\d+$")
# Ops that only run other computations: their time is their body's.
_CONTAINER = re.compile(r"\s(?:while|conditional|call)\(")


def hlo_op_names(hlo_text: str) -> dict[str, str]:
  """Instruction name -> op_name metadata (or NO_METADATA), from HLO text.

  A fusion without metadata of its own takes the first op_name inside the
  computation it calls. Loops, conditionals and calls are left out: their
  bodies' ops are timed.
  """
  names, calls, first_in = {}, {}, {}
  computation = None
  for line in hlo_text.splitlines():
    header = _COMPUTATION.match(line)
    if header:
      computation = header.group(1)
      continue
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name, rest = match.groups()
    op_name = _OP_NAME.search(rest)
    if op_name and computation is not None:
      first_in.setdefault(computation, op_name.group(1))
    if _CONTAINER.search(rest):
      continue
    called = _CALLS.search(rest)
    if not op_name and called:
      calls[name] = called.group(1)
    names.setdefault(name, op_name.group(1) if op_name else NO_METADATA)
  for name, computation in calls.items():
    names[name] = first_in.get(computation, NO_METADATA)
  return names


def _unwrap(component: str) -> str:
  while (match := _WRAPPED.match(component)):
    component = match.group(1)
  return component


def model_part(op_name: str, depth: int) -> tuple[str, str]:
  """(pass, part) of an op_name: see the module docstring.

  'jit(_step)/transpose(jvp(AVGenerator))/AVGenerator.fuse/fusion/lstm/...'
  at depth 3 is ('backward', 'AVGenerator.fuse/fusion/lstm'): the jitted
  function's own name, transformations and control flow are dropped, and so
  is a module (or method) name followed by a method of the same module:
  'VisualModel.encode/VisualModel.features/VisualModel._frame_features'
  is 'VisualModel._frame_features'.
  """
  if op_name == NO_METADATA:
    return ("both", NO_METADATA)
  backward = "transpose(" in op_name
  parts = [_unwrap(part) for part in op_name.split("/")[1:]]
  parts = [part for part in parts if part and not _CONTROL.match(part)]
  parts = [part for part, following in zip(parts, parts[1:] + [""])
           if not following.startswith(part.split(".")[0] + ".")]
  return ("backward" if backward else "forward",
          "/".join(parts[:depth]) or "(top level)")


def _leaf_events(profile: jax.profiler.ProfileData, names: set[str]):
  """(name, duration ns) of every traced op of `names` that holds no other."""
  for plane in profile.planes:
    for line in plane.lines:
      events = sorted(((event.start_ns, event.duration_ns, event.name)
                       for event in line.events if event.name in names),
                      key=lambda event: (event[0], -event[1]))
      for index, (start, duration, name) in enumerate(events):
        following = events[index + 1] if index + 1 < len(events) else None
        if following is not None and following[0] < start + duration:
          continue  # A container: the next op starts inside it.
        yield name, duration


def profile_step(step: Callable, args: Sequence[Any], repeats: int,
                 depth: int = 2, top: int = 15) -> dict:
  """Per model part time of a jitted function's calls.

  Args:
    step: a jax.jit-wrapped function (not yet compiled for `args`).
    args: its arguments; the first is donated by train steps, so each call
      passes the previous call's first result back in when `step` returns
      a tuple (whose first element must then match the first argument).
    repeats: traced calls (after one untraced warm-up call).
    depth: path components that name a part.
    top: parts listed; the rest are summed as '(other parts)'.

  Ops without metadata (copies and transposes XLA adds for layouts) are
  grouped by kind: '(no metadata) transpose_copy_fusion'.

  Returns:
    {'wall_ms': mean wall ms per traced call (tracing slows calls),
    'op_ms': summed leaf-op ms per call, 'busy_cores': op_ms / wall_ms,
    'parts': [{'pass', 'part', 'ms', 'fraction' (of op_ms)}, ... by ms,
    descending]}.
  """
  compiled = step.lower(*args).compile()
  op_names = hlo_op_names(compiled.as_text())
  args = list(args)

  def call():
    out = compiled(*args)
    if isinstance(out, tuple):
      args[0] = out[0]
    jax.block_until_ready(out)

  call()  # Warm-up: first-call allocations.
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      start = time.perf_counter()
      for _ in range(repeats):
        call()
      wall = (time.perf_counter() - start) / repeats
    paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"),
                             recursive=True))
    if not paths:
      raise RuntimeError(f"jax.profiler wrote no trace under {trace_dir}")
    profile = jax.profiler.ProfileData.from_file(paths[-1])
    totals = collections.Counter()
    for name, duration in _leaf_events(profile, set(op_names)):
      key = model_part(op_names[name], depth)
      if op_names[name] == NO_METADATA:  # Say what XLA added: copy, ...
        key = (key[0], f"{NO_METADATA} {_KIND.sub('', name)}")
      totals[key] += duration
  op_ms = sum(totals.values()) / repeats / 1e6
  parts = [{"pass": key[0], "part": key[1], "ms": ns / repeats / 1e6,
            "fraction": ns / repeats / 1e6 / op_ms if op_ms else 0.0}
           for key, ns in totals.most_common()]
  if len(parts) > top:
    rest = parts[top:]
    parts = parts[:top] + [{
        "pass": "both", "part": f"(other parts: {len(rest)})",
        "ms": sum(p["ms"] for p in rest),
        "fraction": sum(p["fraction"] for p in rest)}]
  return {"wall_ms": wall * 1e3, "op_ms": op_ms,
          "busy_cores": op_ms / (wall * 1e3), "parts": parts}

