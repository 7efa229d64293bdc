"""The history checker of the chaos harness: what clients were told, against what the log holds.

A history is a list of operations, each a dict:
- `{"op": "produce", "type": "invoke" | "ok" | "fail" | "info", "value": V, "producer": P,
  "seq": N, "partition": K, "offset": O}`: a record sent (`invoke`), acknowledged at an offset
  (`ok`), refused for sure (`fail`), or with an unknown outcome (`info`: a timeout, the client
  gone). `producer` and `seq` say in which order one producer sent its values to a partition.
  Values are unique across the history.
- `{"op": "read", "reader": R, "partition": K, "offset": O, "value": V}`: a consumer saw value
  V at offset O of partition K.
- `{"op": "abort", "value": V}`: V was written in a transaction that was aborted; a
  read_committed reader must never see it.
- `{"op": "consume", "group": G, "value": V}`: a member of consumer group G processed V.
- `{"op": "commit", "group": G, "partition": K, "offset": O}`: G's commit of offset O for
  partition K was acknowledged; `{"op": "committed", ...}` the same fields: the offset G's
  coordinator answers for K at the end.
- `{"op": "copy", "value": V}`: V read (read_committed) from a copier's output topic; the
  copier's input is what the `read` ops saw.

`check(history)` counts:
- `acknowledged`: produces answered `ok`;
- `lost`: acknowledged values no reader saw;
- `duplicated`: values seen at more than one offset;
- `reordered`: pairs of one producer's acknowledged values in one partition whose offsets
  run against the order it sent them;
- `inconsistent_offsets`: offsets at which readers saw different values;
- `aborted_reads`: reads of aborted values;
- `wrong_offsets`: acknowledged values seen at another offset than the one acknowledged;
- `unexpected`: values read that no producer ever sent;
- `group_missed`: acknowledged values a consumer group (one with `consume` ops) never
  processed;
- `commits_lost`: partitions whose final committed offset is below an acknowledged commit;
- `copies_missing`, `copies_duplicated`, `copies_unexpected` (only with `copy` ops): input
  values the output lacks, output values seen more than once, output values not in the input.
A run is safe when every count but `acknowledged` is zero.
"""

from collections import defaultdict

SAFETY = ("lost", "duplicated", "reordered", "inconsistent_offsets", "aborted_reads",
          "wrong_offsets", "unexpected", "group_missed", "commits_lost", "copies_missing",
          "copies_duplicated", "copies_unexpected")


def check(history):
    sent = set()
    acked = {}  # value -> (partition, offset, producer, seq)
    aborted = set()
    seen_at = defaultdict(set)  # value -> {(partition, offset)}
    at = defaultdict(set)  # (partition, offset) -> {value}
    consumed = defaultdict(set)  # group -> {value}
    commits = defaultdict(lambda: -1)  # (group, partition) -> highest acknowledged commit
    final = {}  # (group, partition) -> committed offset at the end
    copies = defaultdict(int)  # value -> times seen in the output
    for op in history:
        kind = op["op"]
        if kind == "produce":
            if op["type"] == "invoke":
                sent.add(op["value"])
            elif op["type"] == "ok":
                acked[op["value"]] = (op["partition"], op["offset"], op["producer"], op["seq"])
        elif kind == "read":
            seen_at[op["value"]].add((op["partition"], op["offset"]))
            at[(op["partition"], op["offset"])].add(op["value"])
        elif kind == "abort":
            aborted.add(op["value"])
        elif kind == "consume":
            consumed[op["group"]].add(op["value"])
        elif kind == "commit":
            key = (op["group"], op["partition"])
            commits[key] = max(commits[key], op["offset"])
        elif kind == "committed":
            final[(op["group"], op["partition"])] = op["offset"]
        elif kind == "copy":
            copies[op["value"]] += 1
        else:
            raise ValueError(f"unknown operation {kind!r}")
    counts = {
        "acknowledged": len(acked),
        "lost": sum(1 for v in acked if v not in seen_at),
        "duplicated": sum(1 for places in seen_at.values() if len(places) > 1),
        "reordered": _reordered(acked),
        "inconsistent_offsets": sum(1 for values in at.values() if len(values) > 1),
        "aborted_reads": sum(1 for v in seen_at if v in aborted),
        "wrong_offsets": sum(1 for v, (p, o, _, _) in acked.items()
                             if v in seen_at and (p, o) not in seen_at[v]),
        "unexpected": sum(1 for v in seen_at if v not in sent),
        "group_missed": sum(1 for values in consumed.values() for v in acked if v not in values),
        "commits_lost": sum(1 for key, offset in commits.items() if final.get(key, -1) < offset),
        "copies_missing": sum(1 for v in seen_at if copies and v not in copies),
        "copies_duplicated": sum(1 for n in copies.values() if n > 1),
        "copies_unexpected": sum(1 for v in copies if v not in seen_at),
    }
    return counts


def _reordered(acked):
    """Pairs (a, b) of one producer's values in one partition, a sent before b, with a at a
    higher offset than b: counted by sorting on the send order and counting inversions."""
    runs = defaultdict(list)
    for partition, offset, producer, seq in acked.values():
        runs[(producer, partition)].append((seq, offset))
    inversions = 0
    for run in runs.values():
        offsets = [offset for _, offset in sorted(run)]
        inversions += _inversions(offsets)
    return inversions


def _inversions(values):
    """Pairs i < j with values[i] > values[j] (merge sort, so long runs stay cheap)."""
    if len(values) < 2:
        return 0
    middle = len(values) // 2
    left, right = values[:middle], values[middle:]
    count = _inversions(left) + _inversions(right)
    left.sort()
    right.sort()
    j = 0
    for x in left:
        while j < len(right) and right[j] < x:
            j += 1
        count += j
    return count


def safe(counts):
    return all(counts[name] == 0 for name in SAFETY)
