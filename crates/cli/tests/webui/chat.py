"""Drives the web chat page at / in headless Debian chromium, as a user would.

Usage: chat.py BASE_URL API_KEY SCREENSHOT_DIR

The server runs with --api-key, so the page first shows the 401 from
/v1/models; the key typed into the page's key field is kept in localStorage.
Then: a streamed first turn (text grows in several increments, tokens/s shown),
a second turn (the request carries the whole conversation), a long reply
stopped with the Stop button (the page re-enables, the server frees the slot),
an error from the server shown in the page, and a reasoning_content stream
(faked in the browser's fetch) shown in a folded "Thinking" block, on a
narrow screen, then in dark mode.
Every wait is bounded.
"""

import json
import os
import re
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE, KEY, SHOTS = sys.argv[1], sys.argv[2], sys.argv[3]
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f} s] {msg}", flush=True)


def make_driver():
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--disable-gpu", "--window-size=1000,900", "--force-prefers-reduced-motion"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.set_page_load_timeout(30)
    d.set_script_timeout(30)
    return d


def wait(d, what, cond, timeout):
    """Polls cond(d) until truthy; fails with `what` after `timeout` s."""
    try:
        return WebDriverWait(d, timeout, poll_frequency=0.05).until(lambda _: cond(d))
    except Exception as e:
        raise AssertionError(f"timed out after {timeout} s waiting for: {what}") from e


def q(d, css):
    return d.find_element(By.CSS_SELECTOR, css)


def busy(d):
    return d.execute_script("return window.shohin.busy")


def last_answer(d):
    return d.execute_script(
        "const a = document.querySelectorAll('#messages .msg.assistant .content');"
        "return a.length ? a[a.length - 1].textContent : null")


def record_growth(d):
    """Records the last answer's length on every DOM change, in the page."""
    d.execute_script("""
        window.__lens = [];
        const obs = new MutationObserver(() => {
          const a = document.querySelectorAll('#messages .msg.assistant .content');
          if (a.length) {
            const n = a[a.length - 1].textContent.length;
            const l = window.__lens;
            if (!l.length || l[l.length - 1] !== n) l.push(n);
          }
        });
        obs.observe(document.getElementById('messages'),
                    {childList: true, subtree: true, characterData: true});
    """)


def type_and_send(d, text, press_enter=True):
    box = q(d, "#input")
    wait(d, "#input enabled", lambda _: box.is_enabled(), 10)
    box.clear()
    box.send_keys(text)
    if press_enter:
        box.send_keys(Keys.ENTER)
    else:
        q(d, "#send").click()


def active_slots():
    with urllib.request.urlopen(BASE + "/metrics", timeout=10) as r:
        m = re.search(r"^shohin_active_slots (\S+)$", r.read().decode(), re.M)
    return float(m.group(1)) if m else None


def main():
    d = make_driver()
    try:
        run(d)
    except BaseException:
        try:
            path = os.path.join(SHOTS, "webui-failure.png")
            d.save_screenshot(path)
            print(f"failure screenshot: {path}")
            print("page state:", json.dumps(d.execute_script(
                "return {msgs: window.shohin && window.shohin.messages,"
                " error: document.getElementById('error').textContent,"
                " speed: document.getElementById('speed').textContent}")))
            for entry in d.get_log("browser"):
                print("console:", entry)
        except Exception as e:  # the report must not hide the failure
            print(f"(no failure details: {e})")
        raise
    finally:
        d.quit()


def run(d):
    # 1. The page, served without a key; /v1/models needs one: the 401 shows.
    d.get(BASE + "/")
    log(f"loaded {d.title!r}")
    assert d.title == "shohin chat", d.title
    wait(d, "the 401 of /v1/models shown in #error",
         lambda _: "API key" in q(d, "#error").text, 15)
    log(f"without a key: #model={q(d, '#model').text!r} #error={q(d, '#error').text!r}")

    # 2. The key typed in the page: the model name appears; it survives a reload.
    key = q(d, "#key")
    key.send_keys(KEY)
    key.send_keys(Keys.TAB)  # change event
    wait(d, "the model name in #model", lambda _: d.execute_script(
        "return window.shohin.model") == q(d, "#model").text != "", 15)
    model = q(d, "#model").text
    d.refresh()
    wait(d, "the model name after a reload (key from localStorage)",
         lambda _: q(d, "#model").text == model, 15)
    assert q(d, "#error").text == "", q(d, "#error").text
    with urllib.request.urlopen(urllib.request.Request(
            BASE + "/v1/models", headers={"Authorization": "Bearer " + KEY}), timeout=10) as r:
        want = json.load(r)["data"][0]["id"]
    assert model == want, (model, want)
    log(f"model shown: {model!r}")

    # 3. First turn, sent with Enter: text streams in, in several increments.
    record_growth(d)
    t = time.monotonic()
    type_and_send(d, "Write a haiku about the sea")
    wait(d, "Stop enabled while the reply streams", lambda _: q(d, "#stop").is_enabled(), 10)
    assert not q(d, "#send").is_enabled() and not q(d, "#input").is_enabled()
    wait(d, "streamed text appears", lambda _: last_answer(d), 60)
    log(f"first text after {time.monotonic() - t:.2f} s: {last_answer(d)!r}")
    wait(d, "the first reply to finish", lambda _: not busy(d), 120)
    answer1 = last_answer(d)
    lens = d.execute_script("return window.__lens")
    log(f"reply 1 done after {time.monotonic() - t:.2f} s, {len(answer1)} chars, "
        f"{len(lens)} increments seen: {lens[:12]}...")
    assert len(answer1.strip()) > 0
    assert len([n for n in lens if 0 < n < len(answer1)]) >= 2, \
        f"text did not stream in >=2 increments: {lens}"
    speed = q(d, "#speed").text
    log(f"#speed: {speed!r}")
    assert re.search(r"^\d+ tokens · \d+(\.\d)? tok/s$", speed), speed
    assert float(speed.split("· ")[1].split()[0]) > 0
    req1 = d.execute_script("return window.shohin.lastRequest")
    assert req1["stream"] is True and req1["stream_options"] == {"include_usage": True}, req1
    assert req1["model"] == model
    assert q(d, "#input").is_enabled() and not q(d, "#stop").is_enabled()

    # 4. Second turn, sent with the button: the request has the conversation.
    type_and_send(d, "Now make it about mountains.", press_enter=False)
    wait(d, "the second reply to finish",
         lambda _: len(d.find_elements(By.CSS_SELECTOR, "#messages .msg")) == 4
         and not busy(d), 120)
    req2 = d.execute_script("return window.shohin.lastRequest")
    roles = [m["role"] for m in req2["messages"]]
    assert roles == ["user", "assistant", "user"], roles
    assert req2["messages"][0]["content"] == "Write a haiku about the sea"
    assert req2["messages"][1]["content"] == answer1
    contents = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#messages .msg .content")]
    assert contents[0] == "Write a haiku about the sea" and contents[2] == "Now make it about mountains."
    assert contents[3].strip(), "no second reply"
    log(f"reply 2: {contents[3]!r}; request had roles {roles}; #speed {q(d, '#speed').text!r}")

    # 5. Shift+Enter makes a newline (no send); a long reply is stopped.
    box = q(d, "#input")
    box.send_keys("Write a very long story about a dragon,")
    box.send_keys(Keys.SHIFT, Keys.ENTER)
    box.send_keys("at least 3000 words, with many chapters.")
    assert not busy(d), "Shift+Enter sent the message"
    assert "\n" in box.get_attribute("value")
    box.send_keys(Keys.ENTER)
    wait(d, "the long reply to stream", lambda _: len(last_answer(d) or "") > 80, 60)
    assert active_slots() == 1, active_slots()
    t = time.monotonic()
    q(d, "#stop").click()
    wait(d, "Stop disabled and #input enabled after Stop",
         lambda _: not q(d, "#stop").is_enabled() and q(d, "#input").is_enabled(), 5)
    log(f"stopped: page idle after {time.monotonic() - t:.2f} s, "
        f"{len(last_answer(d))} chars, #speed {q(d, '#speed').text!r}")
    assert "stopped" in q(d, "#speed").text
    n = len(last_answer(d))
    wait(d, "the server to free the slot (active_slots 0)", lambda _: active_slots() == 0, 10)
    log(f"server slot freed {time.monotonic() - t:.2f} s after Stop")
    time.sleep(1.0)
    assert len(last_answer(d)) == n, "text still growing after Stop"
    assert len(d.execute_script("return window.shohin.messages")) == 6

    path = os.path.join(SHOTS, "webui-screenshot.png")
    d.save_screenshot(path)
    print(f"screenshot: {path}", flush=True)

    # 6. An error response shows in the page; the failed turn is not kept.
    d.execute_script("document.getElementById('input').value = 'word '.repeat(6000)")
    q(d, "#send").click()
    wait(d, "the server's error shown in the page",
         lambda _: d.find_elements(By.CSS_SELECTOR, "#messages .msg.assistant .error"), 30)
    err = d.find_elements(By.CSS_SELECTOR, "#messages .msg.assistant .error")[-1].text
    log(f"error shown: {err!r}")
    assert err and not err.startswith("HTTP"), err  # the JSON error's message
    assert len(d.execute_script("return window.shohin.messages")) == 6
    assert not busy(d)

    # 7. New chat clears; a reasoning stream (faked: this model does not
    # think) shows a folded Thinking block above the answer, with the
    # speed counted from content chunks when no usage chunk comes.
    q(d, "#new").click()
    assert d.find_elements(By.CSS_SELECTOR, "#messages .msg") == []
    assert d.execute_script("return window.shohin.messages.length") == 0
    d.execute_script("""
        const real = window.fetch;
        window.fetch = async (url, init) => {
          if (!String(url).endsWith('/v1/chat/completions')) return real(url, init);
          const enc = new TextEncoder();
          const parts = [
            {role: 'assistant', content: ''},
            {reasoning_content: 'The user greets me.'},
            {reasoning_content: '\\nI should <b>greet</b> back.'},
            {content: 'Hello'}, {content: ' <i>there</i>'}, {content: '!\\nHow can I help?'},
          ];
          const body = new ReadableStream({async start(c) {
            for (const p of parts) {
              const ch = {object: 'chat.completion.chunk', choices: [{index: 0, delta: p}]};
              c.enqueue(enc.encode('data: ' + JSON.stringify(ch) + '\\r\\n\\r\\n'));
              await new Promise(r => setTimeout(r, 30));
            }
            c.enqueue(enc.encode('data: [DONE]\\n\\n'));
            c.close();
          }});
          return new Response(body, {headers: {'Content-Type': 'text/event-stream'}});
        };
    """)
    type_and_send(d, "Hi")
    wait(d, "the faked reasoning reply to finish",
         lambda _: not busy(d) and d.find_elements(By.CSS_SELECTOR, "details.thinking"), 10)
    det = q(d, "#messages .msg.assistant details.thinking")
    assert det.get_attribute("open") is None, "Thinking block not folded"
    text = d.execute_script(
        "return document.querySelector('details.thinking .thinking-text').textContent")
    assert text == "The user greets me.\nI should <b>greet</b> back.", repr(text)
    assert d.find_elements(By.CSS_SELECTOR, "#messages b, #messages i") == [], "model text as HTML"
    order = d.execute_script(
        "const m = document.querySelector('#messages .msg.assistant');"
        "return [...m.children].map(c => c.className)")
    assert order[:2] == ["thinking", "content"], order
    assert last_answer(d) == "Hello <i>there</i>!\nHow can I help?", repr(last_answer(d))
    assert re.search(r"^5 tokens · ", q(d, "#speed").text), q(d, "#speed").text
    det.find_element(By.TAG_NAME, "summary").click()
    assert det.get_attribute("open") is not None
    d.set_window_size(390, 844)  # a phone
    width = d.execute_script("return document.documentElement.scrollWidth")
    inner = d.execute_script("return window.innerWidth")
    assert width <= inner, f"horizontal overflow on a narrow screen: {width} > {inner}"
    path = os.path.join(SHOTS, "webui-screenshot-narrow.png")
    d.save_screenshot(path)
    print(f"narrow screenshot: {path}", flush=True)
    # 8. Dark mode follows prefers-color-scheme.
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    bg = d.execute_script("return getComputedStyle(document.body).backgroundColor")
    rgb = [int(x) for x in re.findall(r"\d+", bg)[:3]]
    assert sum(rgb) < 150, f"not dark in dark mode: {bg}"
    path = os.path.join(SHOTS, "webui-screenshot-dark.png")
    d.save_screenshot(path)
    print(f"dark screenshot: {path}", flush=True)
    log("all web UI checks passed")


if __name__ == "__main__":
    main()
