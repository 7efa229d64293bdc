"""The history checker on small hand-written histories: each count fires on exactly the fault it
names, and a clean history is safe."""

from history import check, safe


def produce(value, partition, offset, seq, kind="ok", producer="p"):
    ops = [{"op": "produce", "type": "invoke", "value": value, "producer": producer,
            "seq": seq, "partition": partition}]
    if kind:
        ops.append({"op": "produce", "type": kind, "value": value, "producer": producer,
                    "seq": seq, "partition": partition, "offset": offset})
    return ops


def read(value, partition, offset, reader="r"):
    return [{"op": "read", "reader": reader, "partition": partition, "offset": offset,
             "value": value}]


def counts_of(*parts):
    return check([op for part in parts for op in part])


def test_a_clean_history_is_safe():
    c = counts_of(produce("a", 0, 0, 0), produce("b", 0, 1, 1), read("a", 0, 0), read("b", 0, 1))
    assert c["acknowledged"] == 2
    assert safe(c), c


def test_an_acknowledged_value_nobody_read_is_lost():
    c = counts_of(produce("a", 0, 0, 0), produce("b", 0, 1, 1), read("a", 0, 0))
    assert c["lost"] == 1 and not safe(c)


def test_an_unacknowledged_value_may_be_missing_or_present():
    c = counts_of(produce("a", 0, 0, 0, kind="info"), produce("b", 0, 1, 1, kind="fail"),
                  read("a", 0, 0))
    assert c["acknowledged"] == 0 and safe(c), c


def test_a_value_at_two_offsets_is_duplicated():
    c = counts_of(produce("a", 0, 0, 0), read("a", 0, 0), read("a", 0, 1))
    assert c["duplicated"] == 1 and not safe(c)


def test_values_out_of_send_order_are_reordered():
    c = counts_of(produce("a", 0, 1, 0), produce("b", 0, 0, 1), produce("c", 0, 2, 2),
                  read("b", 0, 0), read("a", 0, 1), read("c", 0, 2))
    assert c["reordered"] == 1, c


def test_two_producers_do_not_order_each_other():
    c = counts_of(produce("a", 0, 1, 0, producer="x"), produce("b", 0, 0, 0, producer="y"),
                  read("b", 0, 0), read("a", 0, 1))
    assert c["reordered"] == 0 and safe(c), c


def test_partitions_are_ordered_apart():
    c = counts_of(produce("a", 0, 5, 0), produce("b", 1, 0, 1), read("a", 0, 5), read("b", 1, 0))
    assert c["reordered"] == 0 and safe(c), c


def test_two_readers_seeing_different_values_at_one_offset_are_inconsistent():
    c = counts_of(produce("a", 0, 0, 0), produce("b", 0, 1, 1, kind="info"),
                  read("a", 0, 0, reader="r1"), read("b", 0, 0, reader="r2"))
    assert c["inconsistent_offsets"] == 1 and not safe(c)


def test_reading_an_aborted_value_is_counted():
    c = counts_of(produce("a", 0, 0, 0, kind="info"), [{"op": "abort", "value": "a"}],
                  read("a", 0, 0))
    assert c["aborted_reads"] == 1 and not safe(c)


def test_a_value_found_elsewhere_than_acknowledged_has_a_wrong_offset():
    c = counts_of(produce("a", 0, 3, 0), read("a", 0, 4))
    assert c["wrong_offsets"] == 1 and c["lost"] == 0 and not safe(c)


def test_a_value_nobody_sent_is_unexpected():
    c = counts_of(produce("a", 0, 0, 0), read("a", 0, 0), read("zz", 0, 1))
    assert c["unexpected"] == 1 and not safe(c)


def test_inversions_count_every_pair():
    # Sent 0..4, landed in reverse: every one of the 10 pairs is out of order.
    parts = [produce(f"v{n}", 0, 4 - n, n) for n in range(5)]
    parts += [read(f"v{n}", 0, 4 - n) for n in range(5)]
    assert counts_of(*parts)["reordered"] == 10


def consume(value, group="g"):
    return [{"op": "consume", "group": group, "value": value}]


def commit(partition, offset, kind="commit", group="g"):
    return [{"op": kind, "group": group, "partition": partition, "offset": offset}]


def copy(value):
    return [{"op": "copy", "value": value}]


def test_a_group_that_processed_everything_and_kept_its_commits_is_safe():
    c = counts_of(produce("a", 0, 0, 0), read("a", 0, 0), consume("a"), consume("a"),
                  commit(0, 1), commit(0, 1, kind="committed"))
    assert safe(c), c


def test_a_group_that_skipped_an_acknowledged_value_missed_it():
    c = counts_of(produce("a", 0, 0, 0), produce("b", 0, 1, 1), read("a", 0, 0),
                  read("b", 0, 1), consume("b"))
    assert c["group_missed"] == 1 and not safe(c), c


def test_a_committed_offset_below_an_acknowledged_commit_is_a_lost_commit():
    c = counts_of(commit(0, 5), commit(0, 3, kind="committed"), commit(1, 2))
    assert c["commits_lost"] == 2 and not safe(c), c


def test_a_copy_must_hold_each_input_value_once_and_nothing_else():
    clean = counts_of(produce("a", 0, 0, 0), read("a", 0, 0), copy("a"))
    assert safe(clean), clean
    c = counts_of(produce("a", 0, 0, 0), produce("b", 0, 1, 1), read("a", 0, 0),
                  read("b", 0, 1), copy("a"), copy("a"), copy("z"))
    assert (c["copies_missing"], c["copies_duplicated"], c["copies_unexpected"]) == (1, 1, 1), c
