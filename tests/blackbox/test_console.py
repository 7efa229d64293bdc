"""The web console (issue 17, docs/console.md) in a real browser: Debian's headless Chromium
driven by Selenium. Every page opens; a topic is created, a record produced from the form and
found again by its key; a 1,000-record page of the message browser renders; a config is set and
a topic deleted with its confirmation; the live tail shows records as they are produced; a
group's lag falls on its page, which refreshes itself, as a consumer reads; a reset of its
offsets is planned with a dry run; a user is created and deleted, an ACL added, filtered and
removed from their pages, as an independent admin client sees. Screenshots of each page and the pages' weight and time to
first render are saved under target/console/ (the figures in docs/benchmarks.md)."""

import json
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ResourcePatternType, ResourceType, ScramMechanism)
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import REPO, wait_until
from helpers import create_topic, produce_all, producer

ARTEFACTS = REPO / "target" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), \
        "chromium and chromium-driver (Debian) are installed by scripts/test.sh"
    profile = tempfile.mkdtemp(prefix="sluice-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # As on this machine's probe: no background traffic (the network is closed), no sandbox
    # (root in a container), a profile of its own.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, name):
    driver.save_screenshot(str(ARTEFACTS / f"{name}.png"))


def text(driver, css):
    """The text of the element `css` finds, read in one step (a page that refreshes part of
    itself may replace the element at any moment)."""
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css)
    assert found is not None, f"no {css} on {driver.current_url}"
    return found.strip()


def rows(driver, css):
    return driver.find_elements(By.CSS_SELECTOR, f"{css} tbody tr")


def navigate(driver, act):
    """Does `act` (a click that leads to another page) and waits until that page has loaded
    whole: the old document carries a mark the new one does not."""
    driver.execute_script("window.sluiceOldPage = true;")
    act()
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return window.sluiceOldPage === undefined && document.readyState === 'complete'"))


def submit(driver, form_id, fields, button=None):
    """Fills and submits a form (a select by its option's text), and waits for the page it
    leads to."""
    form = driver.find_element(By.ID, form_id)
    for name, value in fields.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == "select":
            Select(field).select_by_visible_text(value)
            continue
        field.clear()
        field.send_keys(value)
    pressed = form.find_element(By.CSS_SELECTOR, button or "button[type=submit]")
    navigate(driver, pressed.click)


def page_figures(driver):
    """What the browser measured of the page it shows: bytes transferred (the document and
    its stylesheet and script), and milliseconds to the first contentful paint and to the
    document loaded."""
    return driver.execute_script("""
        const nav = performance.getEntriesByType('navigation')[0];
        const resources = performance.getEntriesByType('resource');
        const paint = performance.getEntriesByName('first-contentful-paint')[0];
        return {
          document_bytes: nav.transferSize || nav.encodedBodySize,
          document_decoded_bytes: nav.decodedBodySize,
          resources_bytes: resources.reduce((n, r) => n + (r.transferSize || r.encodedBodySize), 0),
          first_contentful_paint_ms: paint ? paint.startTime : null,
          dom_content_loaded_ms: nav.domContentLoadedEventEnd,
        };""")


def save_figures(name, figures):
    path = ARTEFACTS / "figures.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    known[name] = figures
    path.write_text(json.dumps(known, indent=2))


def test_topics_are_made_produced_to_browsed_and_deleted(broker, browser):
    ui = f"{broker.http}/ui"
    browser.get(ui)
    assert text(browser, "h1") == "Overview"
    assert len(rows(browser, "#brokers")) == 1, "one broker, this one"
    assert "active controller" in text(browser, "#brokers")
    save_figures("overview", page_figures(browser))
    screenshot(browser, "overview")

    browser.get(f"{ui}/topics")
    submit(browser, "create-topic", {"name": "console-orders", "partitions": "3"})
    assert "console-orders" in browser.title
    assert "Topic created" in text(browser, "#notice")
    assert len(rows(browser, "#partitions")) == 3

    navigate(browser, browser.find_element(By.ID, "produce").click)
    submit(browser, "produce-form", {"key": "order-42",
                                     "value": '{"id": 42, "item": "book", "qty": 2}',
                                     "headers": "source=console"})
    assert "Produced" in text(browser, "#notice")
    first = rows(browser, "#records")[0]
    assert first.find_element(By.CSS_SELECTOR, "td.key").text == "order-42"
    value = first.find_element(By.CSS_SELECTOR, "td.value")
    assert "json" in value.get_attribute("class")
    assert '"item": "book"' in value.text, "JSON is pretty-printed"
    assert "source=console" in first.find_element(By.CSS_SELECTOR, "td.headers").text

    # A thousand records more, then the record is found again by its key alone: the browser
    # reads the partition Kafka's default partitioner gives that key.
    produce_all(producer(broker), "console-orders",
                [(f"k-{i}".encode(), f"plain value {i}".encode()) for i in range(1500)],
                partition=0)
    browser.get(f"{ui}/topics/console-orders/messages?key=order-42&from=earliest&max=1000")
    found = rows(browser, "#records")
    assert len(found) == 1 and found[0].find_element(By.CSS_SELECTOR, "td.key").text == "order-42"
    screenshot(browser, "messages-by-key")

    browser.get(f"{ui}/topics/console-orders/messages?partition=0&from=earliest&max=1000")
    assert len(rows(browser, "#records")) == 1000
    assert "1000 records shown" in text(browser, "#record-count")
    assert browser.find_element(By.ID, "next").get_attribute("href").endswith("from=1000&key=&max=1000&binary=base64")
    save_figures("messages_1000", page_figures(browser))
    screenshot(browser, "messages")

    browser.get(f"{ui}/topics/console-orders")
    submit(browser, "alter-config", {"key": "retention.ms", "value": "3600000"},
           button="button[value=set]")
    assert text(browser, "#notice") == "Config changed"
    configs = {r.find_elements(By.TAG_NAME, "td")[0].text: r.find_elements(By.TAG_NAME, "td")[1].text
               for r in rows(browser, "#configs")}
    assert configs["retention.ms"] == "3600000"
    screenshot(browser, "topic")

    submit(browser, "delete-topic", {"confirm": "not-the-name"})
    assert "type the topic's name" in text(browser, "#error")
    submit(browser, "delete-topic", {"confirm": "console-orders"})
    assert "console-orders deleted" in text(browser, "#notice")
    assert "console-orders" not in text(browser, "#topics")
    screenshot(browser, "topics")


def test_the_live_tail_shows_records_as_they_arrive(broker, browser):
    create_topic(broker, "tailed", partitions=2)
    browser.get(f"{broker.http}/ui/topics/tailed/messages")
    browser.find_element(By.ID, "tail").click()
    WebDriverWait(browser, 10).until(lambda d: "waiting" in text(d, "#tail-status"))
    produce_all(producer(broker), "tailed",
                [(b"live", json.dumps({"n": i}).encode()) for i in range(5)])
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.live")) == 5)
    assert '"n": 4' in browser.find_elements(By.CSS_SELECTOR, "tr.live td.value")[0].text
    browser.find_element(By.ID, "tail").click()
    assert text(browser, "#tail-status") == "stopped"


def test_a_groups_lag_falls_on_its_page_as_a_consumer_reads(broker, browser):
    create_topic(broker, "lagging", partitions=1)
    produce_all(producer(broker), "lagging", [(None, b"x" * 50) for _ in range(200)])
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": "readers",
            "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    starter = Consumer(conf)
    starter.commit(offsets=[TopicPartition("lagging", 0, 0)], asynchronous=False)
    starter.close()

    browser.get(f"{broker.http}/ui/groups")
    navigate(browser, browser.find_element(By.LINK_TEXT, "readers").click)
    assert text(browser, "#total-lag") == "200"
    screenshot(browser, "group")

    # The page is not loaded again: its lag table refreshes itself.
    reader = Consumer(conf)
    reader.subscribe(["lagging"])
    read = 0
    try:
        def caught_up():
            nonlocal read
            batch = reader.consume(50, timeout=0.5)
            for m in batch:
                assert m.error() is None, m.error()
                read += 1
            if batch:
                reader.commit(message=batch[-1], asynchronous=False)
            return text(browser, "#total-lag") == "0"

        wait_until(caught_up, timeout=60, what="the page showing no lag")
        assert read == 200
    finally:
        reader.close()

    submit(browser, "reset-offsets", {"topic": "lagging", "to": "earliest"})
    assert "Dry run" in text(browser, "#notice")
    assert "Would commit" in text(browser, "#plan")
    cells = rows(browser, "#plan")[0].find_elements(By.TAG_NAME, "td")
    assert [c.text for c in cells] == ["0", "200", "0"]


def click_and_answer(driver, button, accept):
    """Clicks a button whose form asks first, and answers the browser's question: accepted,
    the next page is waited for; dismissed, nothing is sent."""
    if accept:
        def act():
            button.click()
            WebDriverWait(driver, 10).until(expected_conditions.alert_is_present()).accept()
        navigate(driver, act)
    else:
        button.click()
        WebDriverWait(driver, 10).until(expected_conditions.alert_is_present()).dismiss()


def scram_credentials(admin, user):
    """{mechanism: iterations} of `user`, as an independent admin client reads them."""
    try:
        described = admin.describe_user_scram_credentials([user])[user].result(15)
    except KafkaException as e:
        assert "RESOURCE_NOT_FOUND" in str(e) or "not found" in str(e).lower(), e
        return {}
    return {c.mechanism: c.iterations for c in described.scram_credential_infos}


def acls_of(admin, principal):
    found = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, principal, None, AclOperation.ANY,
        AclPermissionType.ANY)).result(15)
    return [(b.restype, b.name, b.resource_pattern_type, b.operation, b.permission_type)
            for b in found]


def test_users_and_acls_are_managed_from_their_pages(broker, browser):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    ui = f"{broker.http}/ui"
    browser.get(f"{ui}/users")
    assert text(browser, "h1") == "Users"
    submit(browser, "set-password", {"name": "carol", "password": "carol-secret",
                                     "mechanism": "SCRAM-SHA-256", "iterations": "8192"})
    assert text(browser, "#notice") == "Password of carol set"
    assert "SCRAM-SHA-256 (8192 iterations)" in text(browser, "#users")
    assert scram_credentials(admin, "carol") == {ScramMechanism.SCRAM_SHA_256: 8192}
    screenshot(browser, "users")

    navigate(browser, browser.find_element(By.LINK_TEXT, "ACLs").click)
    submit(browser, "add-acl", {"principal": "User:carol", "operation": "write",
                                "resource_type": "topic", "resource_name": "orders-",
                                "pattern_type": "prefixed"})
    assert text(browser, "#notice") == "ACL added"
    wanted = [(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, AclOperation.WRITE,
               AclPermissionType.ALLOW)]
    assert acls_of(admin, "User:carol") == wanted
    # A refused ACL shows the API's refusal, and adds nothing.
    submit(browser, "add-acl", {"principal": "carol", "operation": "read",
                                "resource_type": "topic", "resource_name": "payments"})
    assert "INVALID_REQUEST" in text(browser, "#error")
    assert acls_of(admin, "User:carol") == wanted

    # Filters: what applies to orders-eu includes the prefix; another principal sees none.
    submit(browser, "filter-acls", {"resource_type": "topic", "resource_name": "orders-eu",
                                    "pattern_type": "match"})
    assert len(rows(browser, "#acls")) == 1 and "User:carol" in text(browser, "#acls")
    submit(browser, "filter-acls", {"principal": "User:nobody", "resource_name": "",
                                    "resource_type": "any", "pattern_type": "any"})
    assert len(rows(browser, "#acls")) == 0 and "No ACL matches" in text(browser, "main")
    browser.get(f"{ui}/acls")
    screenshot(browser, "acls")

    # Remove asks first: dismissed, nothing is removed; accepted, exactly that ACL goes.
    remove = rows(browser, "#acls")[0].find_element(By.CSS_SELECTOR, "button")
    click_and_answer(browser, remove, accept=False)
    assert acls_of(admin, "User:carol") == wanted
    click_and_answer(browser, remove, accept=True)
    assert text(browser, "#notice") == "ACL removed"
    assert acls_of(admin, "User:carol") == []

    browser.get(f"{ui}/users")
    row = next(r for r in rows(browser, "#users") if "carol" in r.text)
    click_and_answer(browser, row.find_element(By.CSS_SELECTOR, "button"), accept=True)
    assert text(browser, "#notice") == "User carol deleted"
    assert "carol" not in text(browser, "main table")
    assert scram_credentials(admin, "carol") == {}


def test_the_console_asks_who_calls_when_the_api_does(start_broker):
    broker = start_broker({"SLUICE_HTTP_AUTH": "basic"})
    try:
        urllib.request.urlopen(f"{broker.http}/ui", timeout=10)
        raise AssertionError("the console answered without credentials")
    except urllib.error.HTTPError as e:
        assert e.code == 401 and "Basic" in e.headers["WWW-Authenticate"]
    # Its stylesheet, too, is behind the same door.
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{broker.http}/ui/assets/console.css", timeout=10)


def test_pages_forbid_what_is_not_theirs(broker):
    with urllib.request.urlopen(f"{broker.http}/ui", timeout=10) as r:
        policy = r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert r.headers["Content-Type"].startswith("text/html")
    # A form posted from another site is refused before it reaches the broker.
    for path, form in (("/ui/topics", b"name=evil"),
                       ("/ui/users", b"name=evil&password=evil&mechanism=SCRAM-SHA-512"),
                       ("/ui/acls", b"principal=User:evil&operation=all&resource_type=cluster"
                                    b"&pattern_type=literal&permission=allow")):
        request = urllib.request.Request(
            f"{broker.http}{path}", data=form, method="POST",
            headers={"Origin": "http://evil.example",
                     "Content-Type": "application/x-www-form-urlencoded"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403, path
    for path in ("/v1/topics", "/v1/users", "/v1/acls"):
        with urllib.request.urlopen(f"{broker.http}{path}", timeout=10) as r:
            assert "evil" not in r.read().decode(), path
