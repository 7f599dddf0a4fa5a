"""MP4 clips via PyAV: H.264, yuv420p (plays everywhere), written atomically.

Used for the human-viewable previews of generated clips; the training data itself stays in the
lossless uint8 ``clips.npy`` store.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from gva.io import atomic_path


def write_mp4(path: str | Path, frames: np.ndarray, fps: int, crf: int = 18) -> None:
    """Write uint8 [T,H,W,3] frames as an H.264 yuv420p MP4 at ``fps``.

    yuv420p needs even sides: an odd height/width is padded by one replicated row/column.
    """
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"{path}: expected uint8 frames [T,H,W,3] with T > 0, got {frames.dtype} {list(frames.shape)}")
    if fps <= 0:
        raise ValueError(f"{path}: fps must be positive, got {fps}")
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(int(fps), 1))
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf)}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():  # flush the encoder
                container.mux(packet)


def read_mp4(path: str | Path) -> tuple[np.ndarray, dict]:
    """Decode an MP4 to uint8 [T,H,W,3] RGB plus stream facts (codec, pix_fmt, fps)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "fps": float(stream.average_rate) if stream.average_rate else None}
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return np.stack(frames), info
