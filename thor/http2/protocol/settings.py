"""SETTINGS (RFC 9113 §6.5) and the core's own limits and defences (``H2Config``).

``H2Config`` is one frozen dataclass: what this side announces in its SETTINGS, and the
bounds it enforces on the peer.  The defence counters count frames, not time (the core has
no clock): every ``defence_window_frames`` frames received, the counters start again, and a
peer that sends more than a limit's worth of one kind inside a window gets GOAWAY
ENHANCE_YOUR_CALM.  Legitimate peers send a few SETTINGS, PINGs and resets per thousand
frames; the attacks of CVE-2019-9512/9515/9518 and CVE-2023-44487 send mostly those.
"""

from __future__ import annotations

import dataclasses
import enum

from thor.http2.protocol.errors import FlowControlError, H2ConnectionError

__all__ = ["DEFAULT_SETTINGS", "H2Config", "SettingCode", "parse_settings"]

MAX_WINDOW = 2**31 - 1  # §6.9.1
MIN_FRAME_SIZE = 16384  # §6.5.2, also the largest frame every peer accepts
MAX_FRAME_SIZE = 2**24 - 1


class SettingCode(enum.IntEnum):
    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6
    ENABLE_CONNECT_PROTOCOL = 0x8  # RFC 8441


# §6.5.2 initial values; MAX_CONCURRENT_STREAMS and MAX_HEADER_LIST_SIZE start unlimited.
DEFAULT_SETTINGS: dict[int, int] = {
    SettingCode.HEADER_TABLE_SIZE: 4096,
    SettingCode.ENABLE_PUSH: 1,
    SettingCode.MAX_CONCURRENT_STREAMS: 2**32 - 1,
    SettingCode.INITIAL_WINDOW_SIZE: 65535,
    SettingCode.MAX_FRAME_SIZE: 16384,
    SettingCode.MAX_HEADER_LIST_SIZE: 2**32 - 1,
}


def parse_settings(payload: bytes) -> dict[int, int]:
    """A SETTINGS payload as {identifier: value}, each value checked (§6.5.2).

    Unknown identifiers are kept; callers ignore them (§6.5.2: MUST ignore).
    """
    settings = {}
    for start in range(0, len(payload), 6):
        key = int.from_bytes(payload[start : start + 2], "big")
        value = int.from_bytes(payload[start + 2 : start + 6], "big")
        if key == SettingCode.ENABLE_PUSH and value > 1:
            raise H2ConnectionError("SETTINGS_ENABLE_PUSH not 0 or 1 (§6.5.2)")
        if key == SettingCode.INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            raise FlowControlError("SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1 (§6.5.2)")
        if key == SettingCode.MAX_FRAME_SIZE and not MIN_FRAME_SIZE <= value <= MAX_FRAME_SIZE:
            raise H2ConnectionError("SETTINGS_MAX_FRAME_SIZE out of range (§6.5.2)")
        if key == SettingCode.ENABLE_CONNECT_PROTOCOL and value > 1:
            raise H2ConnectionError("SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1 (RFC 8441)")
        settings[key] = value
    return settings


@dataclasses.dataclass(frozen=True, slots=True)
class H2Config:
    """Limits this side announces and enforces; each field is a setting with a default."""

    # Announced in SETTINGS (§6.5.2).
    max_concurrent_streams: int = 100  # more get RST_STREAM REFUSED_STREAM (§5.1.2)
    # Per stream receive window.  Applied at once: below 65,535 a peer that has not yet
    # read this side's SETTINGS may overrun it (§6.9.2), so lower it only knowingly.
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int = 65536  # decoded, §6.5.2's measure; more is answered 431
    header_table_size: int = 4096
    # Connection receive window, raised from 65,535 by a WINDOW_UPDATE at the start (§6.9.2).
    connection_window_size: int = 1 << 20
    # CONTINUATION flood (2024): the encoded block's bytes and the CONTINUATION frames of one
    # block are bounded; past either, GOAWAY ENHANCE_YOUR_CALM (the block is never decoded).
    max_header_block_size: int = 128 * 1024
    max_continuation_frames: int = 64
    # Floods, counted per window of received frames (CVE-2019-9512/9513/9514/9515/9518,
    # CVE-2023-44487 for resets).
    defence_window_frames: int = 1000
    max_resets_per_window: int = 100  # RST_STREAM both ways (rapid reset, refused floods)
    max_settings_per_window: int = 100
    max_pings_per_window: int = 100
    max_empty_frames_per_window: int = 100  # DATA/HEADERS/CONTINUATION without content
    max_priority_per_window: int = 500
    max_window_updates_per_window: int = 500
    # Control frames this side owes (ACKs, RST_STREAM) pile up when the peer does not read:
    # past this many bytes unsent, GOAWAY ENHANCE_YOUR_CALM (CVE-2019-9512/9515).
    max_outbound_control_bytes: int = 64 * 1024
    # Closed streams remembered, to tell "closed" from "idle" for late frames (§5.1).
    closed_streams_remembered: int = 256

    def local_settings(self) -> dict[int, int]:
        """What this side sends in its first SETTINGS frame (§3.4)."""
        return {
            SettingCode.HEADER_TABLE_SIZE: self.header_table_size,
            SettingCode.ENABLE_PUSH: 0,
            SettingCode.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams,
            SettingCode.INITIAL_WINDOW_SIZE: self.initial_window_size,
            SettingCode.MAX_FRAME_SIZE: self.max_frame_size,
            SettingCode.MAX_HEADER_LIST_SIZE: self.max_header_list_size,
        }
