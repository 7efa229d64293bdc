"""A Quix Streams application (stateful, exactly-once, with its changelog topic) that keeps a
running total per account from `payments` and writes each new total to `quix-totals`.
Run by tests/blackbox/test_processors.py in its own virtual environment:

    quix_balances.py BOOTSTRAP STATE_DIR
"""

import sys

from quixstreams import Application


def main():
    bootstrap, state_dir = sys.argv[1], sys.argv[2]
    app = Application(broker_address=bootstrap, consumer_group="quix-balances",
                      auto_offset_reset="earliest", processing_guarantee="exactly-once",
                      state_dir=state_dir, use_changelog_topics=True, commit_interval=0.5,
                      loglevel="WARNING")
    payments = app.topic("payments", value_deserializer="json")
    totals = app.topic("quix-totals", value_serializer="json")

    def add(value, state):
        total = state.get("total", 0) + value["cents"]
        state.set("total", total)
        return {"account": value["account"], "total": total, "offset": value["seq"]}

    app.dataframe(payments).apply(add, stateful=True).to_topic(totals)
    app.run()


if __name__ == "__main__":
    main()
