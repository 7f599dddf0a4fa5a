"""The pipeline's file contracts, relative to the repository root (dvc.yaml declares the same paths).

Stages run with the repository root as working directory, as DVC runs them.
"""

from pathlib import Path

CURATED_DIR = Path("data/curated")      # images.npy uint8 [N,S,S,3] + index.csv
CLIPS_DIR = Path("data/clips")          # clips.npy uint8 [N,T,S,S,3] + index.csv + generation.json + previews/
EXTRA_FRAMES_DIR = Path("data/extra_frames")  # images.npy + index.csv: generated train frames for train2d.frames=all
CACHE_DIR = Path("data/.cache")         # downloads, tiny-svd, committed generation chunks
DOWNLOAD_DIR = CACHE_DIR / "downloads"
MODEL2D = Path("models/model2d.pt")
MODEL3D_INIT = Path("models/model3d_init.pt")
MODEL3D = Path("models/model3d.pt")
LIVE2D = Path("dvclive/train2d")
LIVE3D = Path("dvclive/train3d")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")
GENERATION_RUN = Path("metrics/svd_generate.json")  # svd_generate's run facts (time, images/s): no stage reads it
