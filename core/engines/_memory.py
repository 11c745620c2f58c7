"""How much host memory one model call needs on the CPU, per input (LR) pixel of a tile.

The estimate chooses the CPU tile size (:meth:`core.Upscaler.tile_for`), so it must be an
upper bound on every machine, or a large tile makes the machine swap or the process get
killed. It is built from what drives the memory, not fitted to one measurement:

* the network's activations: the most elements alive at once during a forward, traced on
  the tensors' storages (:func:`core.engines._probe.activation_profile`). This is a property of the
  graph, the same on every machine;
* the engine's working buffers on top of them (below);
* the upscaler's own buffers around the call: the float output and the blend weights of a
  tile, and the copies made while converting the result (:data:`EDGE_COPIES` output-sized
  float32 buffers);
* :data:`MARGIN` for what varies between machines: allocator rounding and page granularity,
  per-thread scratch of the convolution kernels, the Winograd tile rounding to a cache-sized
  block;
* :data:`CALL_OVERHEAD`, a fixed cost per call whatever the tile (kernels and scratch set up
  for a new input shape): it matters only for small tiles.

Each engine states its own bound on the CPU (``bytes_per_pixel`` of :class:`core.engines.Engine`), from
these parts. Engines (checked with an allocation trace of every buffer >= 256 KB, x4plus, 64x64 input):

* ``torch`` (oneDNN convolutions): the activations, plus one copy of the widest
  convolution input, which oneDNN may reorder into its blocked layout. The activations are
  freed before the result is converted, so the edge buffers count only if they are larger.
* ``ncnn``: ncnn's pool allocator keeps every buffer it handed out (and keeps them after the
  call, for the next one), so the edge buffers come on top, and its peak is the
  activations plus, for each distinct convolution input shape, a
  bordered (padded) copy of the input and its Winograd-transformed copies. With F(4,3)
  (:class:`core.engines._ncnn.NcnnForward` pins that variant, so the figure does not depend
  on which one a CPU would prefer) a transform is 36/16 = 2.25x its input, and the trace
  shows up to three transforms of one shape alive in the pools (the 64-channel 4x layers:
  3 x 2.25 + 1 border = 7.75 inputs). Measured on x4plus: 49-61 KB per LR pixel, against
  8.2 KB of activations.

* ``openvino``: the activations and one copy of the widest convolution input, as for torch,
  but its infer request still holds the output while the result is copied out and converted,
  so the edge buffers come on top (measured: x4plus 12.5 KB per LR pixel against a 16.3 KB
  bound, realesr-animevideov3 1.5 KB against 1.9 KB; :data:`core.engines._openvino.MEMORY_MARGIN`).
``tests/core/engines/test_fast_paths.py`` measures the peak RSS of one call on several tile sizes
and models with both engines and checks it against this bound from both sides;
``benchmarks/cpu_memory.py`` prints the table.
"""

from __future__ import annotations

from ._probe import ActivationProfile

__all__ = ["CALL_OVERHEAD", "EDGE_COPIES", "MARGIN", "edge_bytes"]

# Output-sized float32 buffers around one call: tile output, blend weights, the conversion copies.
EDGE_COPIES = 4
# 10 %: allocator rounding, page granularity, per-thread scratch, Winograd tile rounding (measured
# spread between tile sizes and CPUs: the bound without it is 1.10-1.45x the measured peak).
MARGIN = 1.10
# Fixed bytes per call (measured: 2-7 MB on a 64x64 input beyond the per-pixel cost), with room.
CALL_OVERHEAD = 32 * 2**20


def edge_bytes(profile: ActivationProfile) -> float:
    """The upscaler's output-sized float32 buffers around one call, per LR pixel (:data:`EDGE_COPIES`)."""
    return EDGE_COPIES * 4 * profile.output
