#!/usr/bin/env python3
"""Call hello.v1.Hello/Hi with Python grpcio in a loop and print a JSON summary.

The interop tests in example/interop run this against rotor's example server
while the server rotates connections every second; a client that surfaces a
rotation as an error shows up in "failures".

    python3 hi.py --target 127.0.0.1:50051 --seconds 10 --concurrency 4

It needs only grpcio (Debian: python3-grpcio): no code is generated. The
method is called through grpcio's generic channel.unary_unary with the two
small messages encoded by hand (hello.v1.HiRequest and HiResponse are two
string fields each).
"""

import argparse
import json
import sys
import threading
import time

import grpc

METHOD = "/hello.v1.Hello/Hi"

# The settings rotor's server.ClientOptions gives grpc-go clients, in grpcio
# terms: ping no more often than twice the server's MinPingInterval (10 s by
# default), so the server never answers with GOAWAY "too_many_pings", and
# round_robin so that a dns:/// target of a headless Service spreads over
# every pod. Neither is needed to survive rotation: grpcio reconnects and
# retries transparently on GOAWAY. With grpcio 1.51 (Debian 12), round_robin
# also opens a few short-lived extra connections after each GOAWAY (the
# server counts about 2.5 connections per rotation instead of 1; no call
# fails); with a ClusterIP target, one address, the default pick_first does
# as well without them.
RECOMMENDED_OPTIONS = [
    ("grpc.keepalive_time_ms", 20000),
    ("grpc.keepalive_timeout_ms", 20000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
]


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_hi_request(to_who, message):
    """hello.v1.HiRequest: to_who = 1, message = 2 (both strings)."""
    out = bytearray()
    for field, value in ((1, to_who), (2, message)):
        data = value.encode("utf-8")
        if data:
            out += _varint(field << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def decode_hi_response(buf):
    """hello.v1.HiResponse: from_who = 1, message = 2 (both strings)."""
    fields = {}
    i = 0

    def read_varint():
        nonlocal i
        shift = n = 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    while i < len(buf):
        key = read_varint()
        field, wire = key >> 3, key & 7
        if wire == 2:
            size = read_varint()
            fields[field] = buf[i : i + size].decode("utf-8")
            i += size
        elif wire == 0:
            read_varint()
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return {"fromWho": fields.get(1, ""), "message": fields.get(2, "")}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="127.0.0.1:50051")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--deadline", type=float, default=5, help="seconds, per call")
    p.add_argument("--no-keepalive", action="store_true", help="leave grpcio's keepalive defaults")
    args = p.parse_args()

    options = RECOMMENDED_OPTIONS
    if args.no_keepalive:
        options = [o for o in options if not o[0].startswith("grpc.keepalive")]
    channel = grpc.insecure_channel(args.target, options=options)
    hi = channel.unary_unary(
        METHOD,
        request_serializer=lambda req: encode_hi_request(*req),
        response_deserializer=decode_hi_response,
    )

    lock = threading.Lock()
    summary = {
        "client": "python-grpcio",
        "version": grpc.__version__,
        "python": sys.version.split()[0],
        "calls": 0,
        "ok": 0,
        "failures": {},  # status code name -> count
        "firstErrors": [],  # up to 5 messages
        "servedBy": {},  # fromWho -> count
    }
    stop_at = time.monotonic() + args.seconds

    def loop():
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            try:
                resp = hi(("python", f"call {n}"), timeout=args.deadline)
            except grpc.RpcError as err:
                with lock:
                    summary["calls"] += 1
                    name = err.code().name
                    summary["failures"][name] = summary["failures"].get(name, 0) + 1
                    if len(summary["firstErrors"]) < 5:
                        summary["firstErrors"].append(f"{name}: {err.details()}")
                continue
            with lock:
                summary["calls"] += 1
                summary["ok"] += 1
                who = resp["fromWho"]
                summary["servedBy"][who] = summary["servedBy"].get(who, 0) + 1

    workers = [threading.Thread(target=loop) for _ in range(args.concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    channel.close()
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
