#!/usr/bin/env python3
"""serve_screenshot.py TRANSLATE_MODEL CHAT_MODEL OUT.png - the web page of s2s-serve with real
models, in headless Chromium: a translation and a chat turn, then a screenshot (for the README).
Needs chromium, chromium-driver and python3-selenium (as tests/serve/browser_test.py)."""
import os
import sys
import time

try:
    import selenium  # noqa: F401
except ImportError:  # Debian's python3-selenium belongs to /usr/bin/python3
    if os.path.realpath(sys.executable) != "/usr/bin/python3":
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "serve"))
import serve_test as st  # noqa: E402

st.B = os.path.abspath(os.environ.get("BUILD", "build"))
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

tr, chat, out = sys.argv[1:4]
s = st.Server("--model", "en-de=" + tr, "--model", "chat=" + chat)
o = webdriver.ChromeOptions()
o.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,640"):
    o.add_argument(a)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
try:
    d.get("http://127.0.0.1:%d/" % s.port)
    w = WebDriverWait(d, 30)
    w.until(lambda x: len(x.find_elements(By.CSS_SELECTOR, "#tr-model option")) == 2)
    box = d.find_element(By.ID, "tr-in")
    box.clear()
    box.send_keys("Two young children are playing soccer in a park.")
    d.find_element(By.ID, "tr-go").click()
    w.until(lambda x: x.find_element(By.ID, "tr-out").text not in ("", "…"))
    for line in ("Hello, how are you today?", "Would you like to go to the movies tonight?"):
        d.find_element(By.ID, "ch-in").send_keys(line)
        d.find_element(By.ID, "ch-go").click()
        w.until(lambda x: x.find_elements(By.CSS_SELECTOR, "#log .bot") and
                x.find_elements(By.CSS_SELECTOR, "#log .bot")[-1].get_attribute("data-done") == "1")
        time.sleep(0.2)
    d.save_screenshot(out)
    print("translation:", d.find_element(By.ID, "tr-out").text)
    print("chat:", [e.text for e in d.find_elements(By.CSS_SELECTOR, "#log .msg")])
finally:
    d.quit()
    s.stop()
