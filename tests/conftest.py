import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

# Small models on a 2-core CPU: one thread is as fast as two and far steadier under load.
torch.set_num_threads(1)
