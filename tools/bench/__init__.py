"""`make bench`: Ego-ExoClip extraction against the codec limit, on generated takes of realistic length and encoding.

    python -m tools.bench [--dataset egoexoclip] [--out data/bench] [--naive-takes 1] [--mem-repeat 6]
                          [--skip-memory] [--skip-peer] [--only memory]

One run, one input (cached under OUT/, regenerated only if missing), every figure in SOURCE frames per second
per core, computed from CPU time (user + sys of the measured process and its children: the machine is shared
and CPU time is steadier than wall time; wall is printed beside it):

- codec limit: decode-only of every source view (`ffmpeg -threads 1 -i v -f null -`) + encode-only of exactly
  the frames the output holds (x264 with the pipeline's settings fed raw frames, keyframes at window starts /
  scale + mjpeg of every output JPEG), encoder CPU only (the feeding decoder and this process are not counted);
- the pipeline end to end (`pipeline.egoexoclip.run`, DirectRunner, in a fresh child process), mp4 and frames;
- the naive method (one ffmpeg per clip, `-ss` before `-i`, re-encode with the same settings);
- peak resident memory of a worker and its growth from a 3.5-minute to a 21-minute take, each build alone
  ("idle") and with every core kept busy by busy-loop processes the bench starts and stops around the build
  ("contended"); `--only memory` runs just this part and merges it into an existing OUT/bench.json;
- bytes per pair and a projection to the full 448 release (1.1M pairs);
- an x264 preset x CRF table (encode speed, bytes per 1-s clip, PSNR) on clips of the bench views;
- the peer: video2dataset's exact clipping of the same views at the same windows (peer.py, --skip-peer).

Results: printed table + OUT/bench.json. Input: 2 takes x (Aria 448x448 + 2 GoPro 796x448) x 3.5 min, 30 fps,
textured H.264 (x264 superfast CRF 19, default keyint 250: ~2.5-3 Mbit/s at 796x448), one narration every
1-3 s (mean 2 s), fixed 0.7 s windows (`--window fixed --window-length 0.7`; the EgoClip rule gives 1 s on
uniformly dense takes). The two takes share their video files (the generator encodes identical views once).

Modules, by role: settings.py (the fixed settings), inputs.py (the generated input), codec.py (codec-limit
measurement), worker.py + sampler.py (one build in a child process: CPU time, memory sampler, busy loops),
presets.py (the x264 table), memory.py (the memory runs), table.py (printing), egoexoclip.py (the whole run),
peer.py (video2dataset); builders.py + run_module.py (`make bench DATASET=egoit|egobench|egoclip`: that builder's
real build of its bundled sample against its codec limit, reusing codec.py); egoit.py (`make bench-egoit`),
loader.py and train.py (`make bench-loader`, `make bench-train`).
"""
