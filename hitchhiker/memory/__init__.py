"""Stage IV — memory: leave a place, come back, and find the same place.

A frame-by-frame engine knows only its last W frames; the simulator's land *is* its state. Longer
context alone does not keep a dreamed world the same world: explicit rules for what to write, what to
retrieve, how to update and when to forget do (WorldMem, Context-as-Memory; state-space video world
models). This stage measures memory exactly, with the simulator as ground truth.

- :mod:`.pose`                   where am I? dead reckoning corrected by the shift read from frames
- :mod:`.frame_bank`             retrieval memory: a bank of past frames with pose and time, and its
  write / retrieve / update / forget policies
- :mod:`.memory_dynamics_model`  Stage III's masked dynamics model plus a reader of retrieved
  frames (relative pose and age embeddings, and the cell read)
- :mod:`.memory_engine`          the memory model and its bank behind the engine interface: true or
  estimated pose, memory on or off, the oracle memory
- :mod:`.memory_recipe`          recipe "memory": fine-tune the dynamics model on walks that come
  back, score it on the revisit benchmark
- :mod:`.latent_grid`            state-space memory: a fixed grid of latent cells aligned with the
  world (or, the ablation, the screen), updated once per frame by a gated recurrence
- :mod:`.state_memory_model`     the dynamics model reading that grid (one memory frame and the
  cell read)
- :mod:`.state_memory_engine`    the state memory model and its grid behind the engine interface
- :mod:`.state_recipe`           recipes "state_memory" and "state_memory_screen": fine-tune through
  the grid's scan over whole walks, score it on the revisit benchmark
- :mod:`.window_recipe`          recipe "window16": the control, Stage III's model with a plain
  window of 16 frames, fine-tuned and scored on the same walks
- :mod:`.memory_play`            play it: memory on and off beside the real world, a map of what
  the memory holds, walk the loop, a memory budget
- :mod:`.saved_world`            save a dreamed world (window, memory, pose, generator, the real
  world's replay) to one safetensors file and continue it exactly later
- :mod:`.revisit_benchmark`      the revisit benchmark: condition (i) (real way out, imagined way
  back) and (ii) (the whole walk imagined), memory-needing tiles, 95% intervals
- :mod:`.cost`                   what memory costs as the history grows: ms per frame and bytes,
  retrieval and state-space memory against a longer plain window
- :mod:`.benchmark`              Stage IV's rows of the course benchmark (:mod:`hitchhiker.bench`)
"""

from .frame_bank import FrameBank, MemoryPolicy
from .memory_dynamics_model import MemoryDynamicsModel
from .memory_engine import MemoryEngine

__all__ = ["FrameBank", "MemoryDynamicsModel", "MemoryEngine", "MemoryPolicy"]
