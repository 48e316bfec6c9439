#!/usr/bin/env python3
"""A stand-in for a vLLM or SGLang KV-event publisher, for kvevents' interop test.

It binds an XPUB socket (a PUB socket that also sees subscriptions, so it
can wait for the subscriber instead of losing the first batches) and a
ROUTER replay socket on 127.0.0.1, prints "PUB_PORT ROUTER_PORT", and once
a subscription arrives publishes the batches below as [topic, seq, payload]
with seq an 8-byte big-endian counter. It serves replay requests
[identity, "", start_seq] with [identity, "", seq, payload] per kept batch
from start_seq on, then [identity, "", -1, ""]. It exits when its stdin
closes, or after 60 seconds.

The payloads are msgpack written by the msgpack module from plain lists and
dicts shaped as the engines' msgspec structs encode: array_like structs with
the tag first, or maps with a "type" key; None where an optional field is
unset; trailing defaults left out.
"""

import sys
import time

import msgpack
import zmq

TOPIC = b"kv"


def byte_hash(i):
    """A 32-byte hash (the size of vLLM's sha256 block hashes)."""
    return bytes((i * 7 + j) % 256 for j in range(32))


def batches():
    tokens = list(range(1000, 1032))
    return [
        # vLLM 0.9/0.10: array form throughout, integer hashes, rank 0.
        [1700000000.25, [
            ["BlockStored", [11, 2**63 + 5], None, tokens, 16, None, "GPU", None],
            ["BlockRemoved", [11], "GPU"],
            ["AllBlocksCleared"],
        ], 0],
        # vLLM main: maps, byte hashes, fields newer than the decoder.
        {"ts": 1700000001.5, "events": [
            {"type": "BlockStored", "block_hashes": [byte_hash(1), byte_hash(2)],
             "parent_block_hash": byte_hash(0), "token_ids": tokens, "block_size": 16,
             "lora_id": 3, "medium": "GPU", "lora_name": "sql-adapter",
             "extra_keys": [None, ("mm-hash", 4)], "group_idx": 1,
             "kv_cache_spec_kind": "full_attention", "kv_cache_spec_sliding_window": None},
            {"type": "BlockRemoved", "block_hashes": [byte_hash(2)], "medium": "CPU"},
        ], "data_parallel_rank": 1},
        # SGLang: short arrays, signed Python hash() values, attn_dp_rank.
        [1700000002.0, [
            ["BlockStored", [-5, -(2**63)], -7, [1, 2, 3, 4, 5, 6], 3, None],
            ["BlockRemoved", [-5]],
        ], 2],
        # A newer engine: an unknown event and unknown trailing fields.
        [1700000003.0, [
            ["BlockMoved", [1, 2], "GPU", "CPU"],
            ["BlockRemoved", [2**64 - 1], None, 0, "future-field"],
        ]],
    ]


def main():
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    router = ctx.socket(zmq.ROUTER)
    pub.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.LINGER, 0)
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    router_port = router.bind_to_random_port("tcp://127.0.0.1")
    print(pub_port, router_port, flush=True)

    kept = []
    poller = zmq.Poller()
    poller.register(pub, zmq.POLLIN)
    poller.register(router, zmq.POLLIN)
    poller.register(sys.stdin.fileno(), zmq.POLLIN)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = dict(poller.poll(1000))
        if pub in ready:
            sub = pub.recv()
            if sub[:1] == b"\x01" and not kept:
                for seq, batch in enumerate(batches()):
                    payload = msgpack.packb(batch, use_bin_type=True)
                    pub.send_multipart([TOPIC, seq.to_bytes(8, "big"), payload])
                    kept.append((seq, payload))
        if router in ready:
            frames = router.recv_multipart()
            if len(frames) != 3:
                continue
            ident, _, start = frames
            start = int.from_bytes(start, "big", signed=True)
            for seq, payload in kept:
                if seq >= start:
                    router.send_multipart([ident, b"", seq.to_bytes(8, "big"), payload])
            router.send_multipart([ident, b"", (-1).to_bytes(8, "big", signed=True), b""])
        if sys.stdin.fileno() in ready:
            if not sys.stdin.buffer.read1(1):
                break
    pub.close()
    router.close()
    ctx.term()


if __name__ == "__main__":
    main()
