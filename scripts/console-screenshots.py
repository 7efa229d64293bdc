#!/usr/bin/env python3
"""Makes the console screenshots the README and docs/console.md show (docs/images/console-*.png):
starts `sluice serve` on a fresh data directory, produces at a steady rate for two minutes while
a consumer group falls behind and catches up, so the charts have an hour's first points, then
has headless Chromium take each page.

    .venv/bin/python scripts/console-screenshots.py [path/to/sluice]

Needs what the test suite installs (the .venv's confluent-kafka and selenium, Debian's chromium
and chromium-driver)."""

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "images"
RUN_SECONDS = 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, deadline):
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(REPO / "target" / "debug" / "sluice")
    data = Path(tempfile.mkdtemp(prefix="sluice-screens-"))
    kafka, http = free_port(), free_port()
    server = subprocess.Popen([binary, "serve", "--data-dir", str(data / "data"),
                               "--listen", f"127.0.0.1:{kafka}",
                               "--http-listen", f"127.0.0.1:{http}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(http, time.time() + 30)
        bootstrap = f"127.0.0.1:{kafka}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for topic, partitions in (("orders", 3), ("payments", 2), ("audit-log", 1)):
            admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(15)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "billing",
                             "auto.offset.reset": "earliest", "client.id": "billing-1"})
        consumer.subscribe(["orders"])
        start, n = time.time(), 0
        while time.time() - start < RUN_SECONDS:
            elapsed = time.time() - start
            for _ in range(40 if elapsed < RUN_SECONDS / 2 else 15):
                order = {"order_id": n, "customer": f"c-{n % 17}", "total": round(n * 1.37 % 250, 2),
                         "items": [{"sku": f"sku-{n % 9}", "qty": 1 + n % 3}]}
                producer.produce("orders", key=f"c-{n % 17}", value=json.dumps(order),
                                 headers=[("source", b"checkout")])
                producer.produce("payments", key=f"c-{n % 17}", value=json.dumps({"paid": n}))
                n += 1
            producer.poll(0)
            # The consumer reads slowly in the first half, then catches up.
            consumer.consume(5 if elapsed < RUN_SECONDS / 2 else 400, timeout=0.2)
            time.sleep(0.2)
        producer.flush(10)
        profile = tempfile.mkdtemp(prefix="sluice-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--no-first-run", "--window-size=1280,900", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            IMAGES.mkdir(parents=True, exist_ok=True)
            base = f"http://127.0.0.1:{http}/ui"
            for name, path in (("overview", ""), ("topics", "/topics"),
                               ("messages", "/topics/orders/messages?partition=0&from=-20"),
                               ("group", "/groups/billing")):
                driver.get(base + path)
                time.sleep(0.5)  # fonts and layout settle before the picture; nothing is awaited
                driver.save_screenshot(str(IMAGES / f"console-{name}.png"))
                print(f"docs/images/console-{name}.png")
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
        consumer.close()
    finally:
        server.kill()
        server.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
