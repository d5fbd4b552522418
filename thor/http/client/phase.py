"""Phase: where an HTTP client exchange is (its connection's state says where the messages are).

The phases are the exchange's own; the framing states (request sent, waiting for 100, response
being read, keep-alive) belong to the sans-IO ``thor.http.protocol.client_connection``.
"""

from __future__ import annotations

import enum

__all__ = ["ATTACHED", "DONE", "NEW", "QUEUED", "RESPONDING", "SENT", "Phase"]


class Phase(enum.Enum):
    """Where the exchange is. Rules::

    NEW --request_start--> QUEUED --a connection--> ATTACHED --head written--> SENT
    SENT --final response head--> RESPONDING --end / switch--> DONE
    ATTACHED / SENT --connection lost, retried--> QUEUED
    any --error / cancel--> DONE
    """

    NEW = "new"  # request_start not called yet
    QUEUED = "queued"  # waiting for a connection (or for a retry)
    ATTACHED = "attached"  # on a connection, nothing of the request written on it yet
    SENT = "sent"  # the request head is written on this attempt's connection
    RESPONDING = "responding"  # response_start emitted
    DONE = "done"  # response_done, switched, error or cancel: no more events


# The members as module constants for the hot paths: an enum member lookup (Phase.DONE) costs
# several times a global's in CPython 3.11.
NEW = Phase.NEW
QUEUED = Phase.QUEUED
ATTACHED = Phase.ATTACHED
SENT = Phase.SENT
RESPONDING = Phase.RESPONDING
DONE = Phase.DONE
