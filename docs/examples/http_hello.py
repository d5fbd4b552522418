"""The hello-world server of docs/http.md: ``python docs/examples/http_hello.py [PORT]``."""

import sys

import thor

server = thor.HttpServer("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8000)


@thor.on(server)
def exchange(ex):
    @thor.on(ex)
    def request_done(trailers):
        ex.response_start(200, "OK", [("Content-Type", "text/plain")])
        ex.response_body(b"Hello, world!")
        ex.response_done([])


print(f"serving on http://127.0.0.1:{server.port}/", flush=True)
thor.run()
