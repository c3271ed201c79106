"""The local demo page of launch/demo.py: a workdir's generator in a browser.

jobs.py runs the model (loaded once, one request at a time), examples.py
reads AV-digits test examples to pick from, server.py is the HTTP side and
static/index.html the page.
"""
