"""A client and a server core talking HTTP/2 in memory: no socket, loop or thread."""

from thor.http2.protocol import (
    DataReceived,
    H2Connection,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
)

server = H2Connection()
client = H2Connection(client_side=True)
server.initiate_connection()
client.initiate_connection()


def exchange() -> tuple[list, list]:
    """Move bytes both ways until both sides are quiet; return their events."""
    server_events, client_events = [], []
    while True:
        to_server, to_client = client.data_to_send(), server.data_to_send()
        if not to_server and not to_client:
            return server_events, client_events
        server_events += server.receive_data(to_server)
        client_events += client.receive_data(to_client)


stream_id = client.get_next_available_stream_id()
client.send_headers(
    stream_id,
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"example")],
    end_stream=True,
)
for event in exchange()[0]:
    if isinstance(event, RequestReceived):
        print("server got", dict(event.headers)[b":path"].decode())
        server.send_headers(event.stream_id, [(b":status", b"200")])
        sent = server.send_data(event.stream_id, b"Hello, world!", end_stream=True)
        print("server sent", sent, "bytes")
for event in exchange()[1]:
    if isinstance(event, ResponseReceived):
        print("client got status", dict(event.headers)[b":status"].decode())
    elif isinstance(event, DataReceived):
        print("client got", event.data.decode())
        client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
    elif isinstance(event, StreamEnded):
        print("stream", event.stream_id, "ended")
