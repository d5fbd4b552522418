"""A UDP echo server and a client, over IPv4 and IPv6 loopback."""

import thor
from thor.udp import UdpEndpoint

replies = []


def run_echo(host):
    server = UdpEndpoint()
    server.bind(host, 0)  # port 0: the kernel picks one; read server.port

    @thor.on(server, "datagram")
    def echo(data, client_host, client_port):
        server.send(data.upper(), client_host, client_port)

    client = UdpEndpoint()  # never bound: the first send picks a port

    @thor.on(client, "datagram")
    def reply(data, from_host, from_port):
        print(f"{host}: {data!r} from {from_host}")
        replies.append(data)
        client.shutdown()
        server.shutdown()
        if len(replies) == 2:
            thor.stop()

    @thor.on(client, "socket_error")
    def error(kind, errno, message):
        print(f"{host}: {kind} error {errno}: {message}")
        thor.stop()

    client.send(b"ping over " + host.encode(), host, server.port)


run_echo("127.0.0.1")
run_echo("::1")
thor.schedule(10, thor.stop)  # a safety net for this example
thor.run()
