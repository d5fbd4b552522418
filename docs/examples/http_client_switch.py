"""Ask a server to switch protocols, then talk the new protocol over the same connection.

    python docs/examples/http_client_switch.py http://127.0.0.1:8000/echo

The request carries ``Upgrade: echo``; after the server's ``101 Switching Protocols`` the
exchange hands over the TCP connection (and any bytes that came with the 101 head), and the
client sends a line and prints what comes back.
"""

import sys

import thor

url = sys.argv[1]
client = thor.HttpClient()
ex = client.exchange()


def on_start(status, phrase, headers):
    print("response:", status.decode(), phrase.decode())


def on_switched(tcp, leftover):
    received = bytearray(leftover)  # bytes of the new protocol read with the 101 head

    def on_data(chunk):
        received.extend(chunk)
        if received.endswith(b"\n"):
            print("echoed:", bytes(received).decode().strip())
            tcp.abort()
            thor.stop()

    tcp.on("data", on_data)  # listen before returning: nothing is read in between
    tcp.write(b"hello over the new protocol\n")


def on_done(trailers):
    print("the server did not switch")
    thor.stop()


def on_error(err):
    print("error:", err)
    thor.stop()


ex.on("response_start", on_start)
ex.on("switched", on_switched)
ex.on("response_done", on_done)
ex.on("error", on_error)
ex.request_start("GET", url, [], upgrade="echo")
ex.request_done()
thor.schedule(10, thor.stop)
thor.run()
