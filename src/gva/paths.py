"""The pipeline's file contracts, relative to the repository root (dvc.yaml declares the same paths).

Stages run with the repository root as working directory, as DVC runs them.
"""

import os
from pathlib import Path

CURATED_DIR = Path("data/curated")      # images.npy uint8 [N,S,S,3] + index.csv
CLIPS_DIR = Path("data/clips")          # clips.npy uint8 [N,T,S,S,3] + index.csv + generation.json + previews/
EXTRA_FRAMES_DIR = Path("data/extra_frames")  # images.npy + index.csv: generated train frames for train2d.frames=all
# Downloads, tiny model builds, committed generation chunks. GVA_CACHE_DIR moves it, e.g. to share one
# cache between `dvc queue`'s temporary workspaces (`gva grid` does): everything in it is keyed
# or checked by content, so where it lives never changes an output.
DEFAULT_CACHE_DIR = Path("data/.cache")
CACHE_DIR = Path(os.environ.get("GVA_CACHE_DIR") or DEFAULT_CACHE_DIR)
DOWNLOAD_DIR = CACHE_DIR / "downloads"
MODEL2D = Path("models/model2d.pt")
MODEL3D_INIT = Path("models/model3d_init.pt")
MODEL3D = Path("models/model3d.pt")
LIVE2D = Path("dvclive/train2d")
LIVE3D = Path("dvclive/train3d")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")
GENERATION_RUN = Path("metrics/svd_generate.json")  # svd_generate's run facts (time, images/s): no stage reads it
