"""A faust-streaming application: a table of totals per account kept from `payments`, with
its changelog topic (at least once, faust's default); each new total goes to `faust-totals`.
Run by tests/blackbox/test_processors.py in its own virtual environment:

    faust_balances.py BOOTSTRAP DATA_DIR worker
"""

import json
import sys

import faust

BOOTSTRAP, DATA_DIR = sys.argv[1], sys.argv[2]
sys.argv = [sys.argv[0], *sys.argv[3:]]

app = faust.App("faust-balances", broker=f"kafka://{BOOTSTRAP}", datadir=DATA_DIR,
                store="memory://", broker_session_timeout=10, broker_heartbeat_interval=1,
                topic_partitions=2, topic_replication_factor=1, web_enabled=False,
                consumer_auto_offset_reset="earliest")
payments = app.topic("payments", key_type=bytes, value_type=bytes, value_serializer="raw")
totals_out = app.topic("faust-totals", key_type=bytes, value_type=bytes, value_serializer="raw")
totals = app.Table("totals", default=int, partitions=2)


@app.agent(payments)
async def fold(stream):
    async for key, value in stream.items():
        payment = json.loads(value)
        # The table's keys and values go to its changelog as JSON (faust's default codec).
        account = payment["account"]
        totals[account] += payment["cents"]
        record = {"account": account, "total": totals[account], "seq": payment["seq"]}
        await totals_out.send(key=key, value=json.dumps(record).encode())


if __name__ == "__main__":
    app.main()
