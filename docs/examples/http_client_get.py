"""Fetch a URL with thor.HttpClient and print the status, the headers and the body size.

Usage: python http_client_get.py URL [URL...]   (the URLs are fetched concurrently)
"""

import sys

import thor
from thor.http.error import HttpError

urls = sys.argv[1:] or ["http://127.0.0.1:8000/"]
client = thor.HttpClient(connect_timeout=5)
waiting = set(urls)


def fetch(url):
    ex = client.exchange()
    size = 0

    def response_start(status, phrase, headers):
        print(f"{url}: {status.decode()} {phrase.decode()}")
        for name, value in headers:
            print(f"  {name.decode()}: {value.decode('latin-1')}")

    def response_body(chunk):
        nonlocal size
        size += len(chunk)

    def response_done(trailers):
        print(f"{url}: {size} body bytes")
        finished()

    def error(err: HttpError):
        print(f"{url}: error {err.status}: {err}")
        finished()

    def finished():
        waiting.discard(url)
        if not waiting:
            client.close()
            thor.stop()

    ex.on("response_start", response_start)
    ex.on("response_body", response_body)
    ex.on("response_done", response_done)
    ex.on("error", error)
    ex.request_start("GET", url, [("User-Agent", "thor-example")])
    ex.request_done()


for url in urls:
    fetch(url)
thor.schedule(30, thor.stop)  # a safety net for this example
thor.run()
