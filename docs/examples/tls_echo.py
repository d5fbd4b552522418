"""A TLS echo server and a client that verifies it, on 127.0.0.1.

trustme (pip install trustme) makes a throw-away CA and a certificate for
"localhost"; with real files, pass their paths to server_context().
"""

import tempfile

import trustme

import thor
from thor.tls import TlsClient, TlsServer, client_context, server_context

ca = trustme.CA()
workdir = tempfile.TemporaryDirectory()
ca_file = f"{workdir.name}/ca.pem"
cert_file = f"{workdir.name}/server.pem"  # private key + certificate chain
ca.cert_pem.write_to_path(ca_file)
ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(cert_file)

server = TlsServer("127.0.0.1", 0, server_context(cert_file, alpn=["http/1.1"]))


@thor.on(server, "connect")
def on_server_connection(conn):
    print(f"server: {conn.ssl_object.version()}, ALPN {conn.alpn_protocol}")
    conn.on("data", conn.write)  # echo
    conn.on("close", conn.close)


client = TlsClient(context=client_context(cafile=ca_file, alpn=["http/1.1"]))


@thor.on(client, "connect")
def on_client_connection(conn):
    names = [value for kind, value in conn.peer_certificate["subjectAltName"]]
    print(f"client: verified the server as {names}")

    @thor.on(conn, "data")
    def on_data(data):
        print(f"client: received {data!r}")
        conn.close()  # close_notify, FIN, then wait for the server's

    @thor.on(conn, "disconnect")
    def on_disconnect():
        server.shutdown()
        thor.stop()

    conn.write(b"hello, TLS")


@thor.on(client, "connect_error")
def on_error(kind, errno, message):
    print(f"client: {kind} error: {message}")
    thor.stop()


client.connect("localhost", server.port, connect_timeout=5)
thor.schedule(10, thor.stop)  # a safety net for this example
thor.run()
workdir.cleanup()
