"""Pure planning functions: requests -> lanes, frame-set expressions and ffmpeg filtergraphs.

Nothing here runs a process, so the exact layout every output frame will have is unit-testable, and the
runner (extract.py) can verify ffmpeg's output against the same plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Window = tuple[int, int]  # [start, end) in source frame indices


def sample_frame_indices(start: int, end: int, n: int, last: bool = False) -> list[int]:
    """n indices spread uniformly over [start, end): the centre of each of n equal bins.

    start + floor((i + 0.5) * (end - start) / n), in integer arithmetic (no float rounding at bin edges).
    A window shorter than n yields repeated indices, so every clip has exactly n frames.
    last: the window's last frame is the last index, the other n - 1 the centres of n - 1 equal bins over the
    frames before it (a window whose last frame the question is about: EgoBench's EgoPlan observation frame).
    """
    if n < 1 or end <= start:
        raise ValueError(f"need n >= 1 and start < end, got start={start} end={end} n={n}")
    if last:
        if n == 1 or end - 1 == start:
            return [start] * (n - 1) + [end - 1]
        return [*sample_frame_indices(start, end - 1, n - 1), end - 1]
    length = end - start
    return [start + ((2 * i + 1) * length) // (2 * n) for i in range(n)]


def assign_lanes(windows: Sequence[Window]) -> list[list[int]]:
    """Greedy interval partitioning: lanes of pairwise non-overlapping windows, as indices into `windows`.

    Windows are taken by (start, end); each goes to the first lane whose last window ended at or before its
    start, else opens a new lane. Each lane is ordered by start, so a lane's frames, concatenated, are exactly
    its windows back to back -- which is what lets one encoder + the segment muxer cut them apart.
    Identical windows land in different lanes (dedupe them before calling when that is not wanted).
    """
    order = sorted(range(len(windows)), key=lambda i: (windows[i][0], windows[i][1], i))
    lanes: list[list[int]] = []
    lane_end: list[int] = []
    for i in order:
        start, end = windows[i]
        for k, last_end in enumerate(lane_end):
            if last_end <= start:
                lanes[k].append(i)
                lane_end[k] = end
                break
        else:
            lanes.append([i])
            lane_end.append(end)
    return lanes


def merge_windows(windows: Iterable[Window]) -> list[Window]:
    """Sorted disjoint union of [start, end) windows (touching windows merge)."""
    merged: list[list[int]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def membership_expr(windows: Iterable[Window], var: str = "n") -> str:
    """ffmpeg expression: non-zero iff `var` lies in the union of `windows`.

    Built as a balanced if/lt tree over the disjoint ranges, so ffmpeg evaluates O(log k) terms per frame
    instead of a k-term sum (thousands of sampled frames x tens of thousands of source frames add up).
    """
    ranges = merge_windows(windows)
    if not ranges:
        return "0"

    def tree(lo: int, hi: int) -> str:
        if hi - lo == 1:
            a, b = ranges[lo]
            return f"eq({var},{a})" if b - a == 1 else f"between({var},{a},{b - 1})"
        mid = (lo + hi) // 2
        return f"if(lt({var},{ranges[mid][0]}),{tree(lo, mid)},{tree(mid, hi)})"

    return tree(0, len(ranges))


def lane_segment_starts(windows: Sequence[Window]) -> list[int]:
    """Output frame number at which each window of a lane begins (the lane's dense frame numbering)."""
    starts, pos = [], 0
    for start, end in windows:
        starts.append(pos)
        pos += end - start
    return starts


def even_size(width: int, height: int) -> tuple[int, int]:
    """x264 with yuv420p needs even dimensions (SSv2's 427x240 webm, odd crops): round each down to even."""
    return max(2, width // 2 * 2), max(2, height // 2 * 2)


def mp4_filtergraph(
    lanes: Sequence[Sequence[Window]], fps_fraction: str, size: tuple[int, int] | None = None
) -> str:
    """Decode once -> keep the union of windows -> split into lanes -> per-lane select, dense timestamps.

    `trim` ends the source at the last needed frame so ffmpeg stops decoding there. The union `select`
    renumbers frames, so each lane's select is written in union-stream numbers (see `to_union_numbering`).
    `setpts=N/rate/TB` makes each lane a gap-free constant-rate stream, so frame k of a lane is at k/rate and
    the encoder never sees holes (which would otherwise be filled or stretched).
    `size` (w, h): the source's size; an odd one is scaled to the even size below it (even sizes: no scaling,
    so the graph, and the bytes, of even sources do not change).
    """
    union = merge_windows(w for lane in lanes for w in lane)
    head = f"[0:v:0]trim=end_frame={union[-1][1]},select='{membership_expr(union)}'"
    if size is not None and even_size(*size) != tuple(size):
        head += ",scale={}:{}:flags=bicubic,setsar=1".format(*even_size(*size))
    dense = f"setpts=N/({fps_fraction})/TB"
    if len(lanes) == 1:
        return f"{head},{dense}[l0]"
    parts = [f"{head},split={len(lanes)}" + "".join(f"[s{k}]" for k in range(len(lanes)))]
    for k, lane in enumerate(lanes):
        expr = membership_expr(to_union_numbering(lane, union))
        parts.append(f"[s{k}]select='{expr}',{dense}[l{k}]")
    return ";".join(parts)


def to_union_numbering(windows: Iterable[Window], union: Sequence[Window]) -> list[Window]:
    """Re-express source-frame windows in the frame numbers they get after the union select."""
    offsets, pos = [], 0
    for a, b in union:
        offsets.append(pos - a)
        pos += b - a
    out = []
    for start, end in windows:
        k = next(i for i, (a, b) in enumerate(union) if a <= start < b)  # windows never straddle union gaps
        out.append((start + offsets[k], end + offsets[k]))
    return out


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Output (w, h) with the short side == short_side, aspect kept, both even (yuv420 JPEG, codecs)."""

    # nearest even integer, halves rounded up, in integer arithmetic (round() would round halves to even)
    def long_side(long: int, short: int) -> int:
        return max(2, (long * short_side + short) // (2 * short) * 2)

    if width <= height:
        return short_side, long_side(height, width)
    return long_side(width, height), short_side


def frames_filtergraph(indices: Iterable[int], out_w: int, out_h: int) -> str:
    """Decode once -> keep each needed source frame once -> scale -> dense timestamps for image2."""
    idx = sorted(set(indices))
    sel = membership_expr((i, i + 1) for i in idx)
    return (
        f"[0:v:0]trim=end_frame={idx[-1] + 1},select='{sel}',"
        f"scale={out_w}:{out_h}:flags=bicubic,setsar=1,setpts=N/TB[f]"
    )
