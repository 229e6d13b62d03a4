#!/usr/bin/env python3
"""browser_test.py BUILD [SCREENSHOT.png] - s2s-serve's web page in a real browser.

Headless Chromium driven by Selenium (Debian: chromium, chromium-driver, python3-selenium) against
a server started here on a free loopback port: type a sentence, press Translate, read the
translation from the page and compare it with the server's own answer; send a chat line and
see the reply arrive through the event stream, as the server's own reply. A screenshot goes to the
second argument when given. Exit status 77 (a skip) when Chromium, its driver or Selenium is
missing; 1 when a check fails.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

if __name__ == "__main__" and not os.environ.get("S2S_BROWSER_REEXEC"):
    try:
        import selenium  # noqa: F401
    except ImportError:  # Debian's python3-selenium belongs to /usr/bin/python3
        if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != "/usr/bin/python3":
            os.environ["S2S_BROWSER_REEXEC"] = "1"
            os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_test as st  # noqa: E402  (the Server helper and the model training)

fails = 0


def check(name, cond, why=""):
    global fails
    print(("ok " if cond else "FAIL ") + name + ("" if cond else ": " + str(why)))
    sys.stdout.flush()
    fails += 0 if cond else 1
    return cond


def main():
    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        print("skip: python3-selenium is not installed")
        return 77
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not chrome or not os.path.exists(driver_bin):
        print("skip: chromium or chromium-driver is not installed")
        return 77
    t = tempfile.mkdtemp(prefix="s2s_browser_")
    s = None
    drv = None
    try:
        words = "red blue green cat dog sees likes the a big small bird".split()
        with open(t + "/train.tsv", "w") as f:
            for i in range(400):
                a = [words[(i * 7 + k * 5) % 12] for k in range(2 + i % 4)]
                f.write(" ".join(a) + "\t" + " ".join(reversed(a)) + "\n")
        r = st.run([st.B + "/s2s-translate", "train", "--train-tsv", t + "/train.tsv", "--out", t + "/m", "--vocab",
                    "40", "--hidden", "32", "--embed", "16", "--max-steps", "150", "--valid-every", "0", "--lr",
                    "5e-3", "--warmup", "5", "--batch-tokens", "300", "--device", "cpu", "--threads", "1", "--quiet"])
        if not check("setup_train", r.returncode == 0, r.stderr):
            return 1
        M = t + "/m.best.safetensors"
        s = st.Server("--model", "translate=" + M, "--model", "chat=" + M)
        opts = webdriver.ChromeOptions()
        opts.binary_location = chrome
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1100,900", "--user-data-dir=" + t + "/profile"):
            opts.add_argument(a)
        from selenium.webdriver.chrome.service import Service
        drv = webdriver.Chrome(service=Service(driver_bin), options=opts)
        drv.set_page_load_timeout(30)
        url = "http://127.0.0.1:%d/" % s.port
        drv.get(url)
        wait = WebDriverWait(drv, 30)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tr-model option")) == 2)
        check("models_listed", [o.text for o in drv.find_elements(By.CSS_SELECTOR, "#tr-model option")] ==
              ["translate", "chat"])
        src = "red cat sees the big bird"
        box = drv.find_element(By.ID, "tr-in")
        box.clear()
        box.send_keys(src)
        drv.find_element(By.ID, "tr-go").click()
        wait.until(lambda d: d.find_element(By.ID, "tr-out").text not in ("", "…"))
        shown = drv.find_element(By.ID, "tr-out").text
        code, _, txt = s.post("/translate", [{"src": src, "id": "translate", "beam_size": 5}])
        check("translation_shown", code == 200 and shown == json.loads(txt)[0][0]["tgt"] and shown,
              "page %r, server %s" % (shown, txt))
        # the chat: watch the reply's text while it streams, until the page marks it done
        line = drv.find_element(By.ID, "ch-in")
        line.send_keys("blue dog likes the small bird")
        drv.find_element(By.ID, "ch-go").click()
        seen, t0 = [], time.time()
        while time.time() - t0 < 30:
            bots = drv.find_elements(By.CSS_SELECTOR, "#log .bot")
            if bots:
                done = bots[-1].get_attribute("data-done") == "1"
                # read the text after the mark: the page sets the text before it marks the reply
                # done, so a text read before the mark may miss the last pieces
                seen.append(bots[-1].text)
                if done:
                    break
            time.sleep(0.005)
        final = seen[-1] if seen else ""
        you = [e.text for e in drv.find_elements(By.CSS_SELECTOR, "#log .you")]
        code, _, txt = s.post("/v1/chat/completions", {"model": "chat", "messages": [
            {"role": "user", "content": "blue dog likes the small bird"}]})
        want = json.loads(txt)["choices"][0]["message"]["content"] if code == 200 else txt
        check("chat_reply_shown", you == ["blue dog likes the small bird"] and final == want,
              "you %s, reply %r, server %r" % (you, final, want))
        bots = drv.find_elements(By.CSS_SELECTOR, "#log .bot")
        pieces = int(bots[-1].get_attribute("data-pieces") or 0) if bots else 0
        # the reply came through the event stream (the server joins the pieces that wait for a
        # slow reader into one event, so their number depends on timing; serve_test.py checks
        # the stream itself)
        check("chat_reply_streamed_in", pieces >= 1 and bots[-1].get_attribute("data-done") == "1",
              "%d pieces; the text seen while it came: %s" % (pieces, sorted(set(seen))[:4]))
        check("no_errors_on_page", drv.find_element(By.ID, "tr-err").text == "" and
              drv.find_element(By.ID, "ch-err").text == "")
        if len(sys.argv) > 2:
            drv.save_screenshot(sys.argv[2])
            print("screenshot:", sys.argv[2])
    finally:
        if drv:
            drv.quit()
        if s:
            s.stop()
        shutil.rmtree(t, ignore_errors=True)
    print("browser_test: %d failed" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
