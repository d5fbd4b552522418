"""Resolve names on the loop: IP literals at once, names in a thread pool."""

import socket
import sys

import thor
import thor.dns

names = sys.argv[1:] or ["localhost", "::1", "no-such-host.invalid"]
waiting = set(names)


def report(name):
    def done(results):
        if isinstance(results, thor.dns.DnsError):
            print(f"{name}: {results}")
        else:
            addresses = sorted({sockaddr[0] for _, _, _, _, sockaddr in results})
            print(f"{name}: {', '.join(addresses)}")
        waiting.discard(name)
        if not waiting:
            thor.stop()

    return done


for name in names:
    thor.dns.lookup(name, 80, report(name), socktype=socket.SOCK_STREAM)
thor.schedule(10, thor.stop)  # a safety net for this example
thor.run()
