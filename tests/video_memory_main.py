"""Peak memory of decoding a long video for generate, bounded or not.

Writes a synthetic 1920x1080 mpeg4 video of --seconds seconds (a moving
gradient, 25 fps) into --folder, then in a fresh process each decodes it as
launch/generate.py's --output_video did before (every frame, full size:
media.load_video without bounds) and as it does now
(generate_io.video_for_output), and prints the peak RSS growth of each.

  PYTHONPATH=. python tests/video_memory_main.py --folder=/tmp/vm --seconds=8
"""

import argparse
import os
import resource
import subprocess
import sys


def write_video(path: str, seconds: float, width=1920, height=1080, fps=25):
  import av  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  ramp = np.linspace(0, 255, width, dtype=np.float32)
  with av.open(path, "w") as container:
    stream = container.add_stream("mpeg4", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for i in range(int(seconds * fps)):
      row = ((ramp + 8 * i) % 256).astype(np.uint8)
      image = np.broadcast_to(row[None, :, None], (height, width, 3))
      frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image),
                                         format="rgb24")
      container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def measure(path: str, mode: str) -> None:
  """Prints 'mode shape peak_rss_growth_mb' for one decode."""
  # pylint: disable=g-import-not-at-top
  from experiments import av_digits
  from wavegan_jax.data import media
  from wavegan_jax.evaluation import generate as generate_lib
  from wavegan_jax.evaluation import generate_io
  clip = generate_lib.ClipSpec.from_config(av_digits.get_config())
  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  if mode == "unbounded":
    frames = media.load_video(path, fps=float(clip.fps), channels=3)
  else:
    frames = generate_io.video_for_output(path, clip)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  print(f"{mode} frames={frames.shape} peak_rss_growth_mb="
        f"{(peak - before) / 1024:.0f}")


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--folder", required=True)
  parser.add_argument("--seconds", type=float, default=8.0)
  parser.add_argument("--measure", default=None)
  parser.add_argument("--mode", default=None)
  parser.add_argument("--modes", default="unbounded,bounded",
                      help="which decodes to measure, comma-separated")
  args = parser.parse_args()
  if args.measure:
    measure(args.measure, args.mode)
    return
  path = os.path.join(args.folder, f"long_{args.seconds:g}s.mp4")
  if not os.path.exists(path):
    write_video(path, args.seconds)
  print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB, {args.seconds:g} s "
        "of 1920x1080 at 25 fps")
  for mode in args.modes.split(","):
    subprocess.run([sys.executable, __file__, f"--folder={args.folder}",
                    f"--measure={path}", f"--mode={mode}"], check=True)


if __name__ == "__main__":
  main()
