#!/usr/bin/python3
"""The 60-line pyzmq broker of issue 18, as an optional peer bench.

A load-balancing broker (ROUTER front for clients, ROUTER back for workers, least-recently-used
worker queue), one worker process that answers each job at once, and a client that measures:
  - the median round trip of one trivial job through the broker (client -> broker -> worker -> back),
  - the median round trip of raw libzmq DEALER/ROUTER echo between processes, in the same rounds
    (interleaved, so the ratio holds under load),
  - the throughput of no-op jobs through the broker with a window of jobs in flight.
Needs Debian's python3-zmq (`apt-get install -y python3-zmq`), so run it with /usr/bin/python3; without it the script says so and
exits 77 (meson's "skipped").

Usage: /usr/bin/python3 bench/pyzmq_broker.py [--rounds R] [--trips N] [--jobs J] [--window W]
"""
import argparse, multiprocessing as mp, statistics, sys, time

try:
    import zmq
except ImportError:
    sys.exit(print("pyzmq_broker: python3-zmq is missing; install it with "
                   "`apt-get install -y python3-zmq`", file=sys.stderr) or 77)


def broker(front_ep, back_ep):
    ctx = zmq.Context()
    front, back = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
    front.bind(front_ep)
    back.bind(back_ep)
    idle, poller = [], zmq.Poller()
    poller.register(back, zmq.POLLIN)
    while True:
        poller.register(front, zmq.POLLIN if idle else 0)  # 0: unregister
        for sock, _ in poller.poll():
            if sock is back:
                worker, client, *rest = back.recv_multipart()
                idle.append(worker)
                if client != b"READY":
                    front.send_multipart([client] + rest)
            else:
                client, *job = front.recv_multipart()
                back.send_multipart([idle.pop(0), client] + job)


def worker(back_ep):
    sock = zmq.Context().socket(zmq.DEALER)
    sock.connect(back_ep)
    sock.send(b"READY")
    while True:
        client, job = sock.recv_multipart()
        sock.send_multipart([client, job])  # a no-op job: the result is the input


def raw_echo(ep):
    sock = zmq.Context().socket(zmq.ROUTER)
    sock.bind(ep)
    while True:
        sock.send_multipart(sock.recv_multipart())


def trips(sock, n):
    """Median round trip in microseconds of n one-at-a-time 8-byte messages."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        sock.send(i.to_bytes(8, "little"))
        sock.recv()
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def throughput(sock, jobs, window):
    t0, sent, got = time.perf_counter(), 0, 0
    while got < jobs:
        while sent < jobs and sent - got < window:
            sock.send(sent.to_bytes(8, "little"))
            sent += 1
        sock.recv()
        got += 1
    return jobs / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--trips", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--window", type=int, default=1000)
    a = ap.parse_args()
    if min(a.rounds, a.trips, a.jobs, a.window) < 1:
        sys.exit("pyzmq_broker: --rounds, --trips, --jobs and --window must be >= 1")
    eps = ["ipc:///tmp/pd-pyzmq-front-%d" % mp.current_process().pid,
           "ipc:///tmp/pd-pyzmq-back-%d" % mp.current_process().pid,
           "ipc:///tmp/pd-pyzmq-raw-%d" % mp.current_process().pid]
    procs = [mp.Process(target=broker, args=eps[:2], daemon=True),
             mp.Process(target=worker, args=eps[1:2], daemon=True),
             mp.Process(target=raw_echo, args=eps[2:], daemon=True)]
    for p in procs:
        p.start()
    ctx = zmq.Context()
    via, raw = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    via.RCVTIMEO = raw.RCVTIMEO = 10000  # a dead broker or worker fails the bench, not hangs it
    via.connect(eps[0])
    raw.connect(eps[2])
    trips(via, 100), trips(raw, 100)  # warm up: connections, worker READY
    print("round  raw_us  pyzmq_broker_us  ratio  pyzmq_jobs_per_s")
    for r in range(a.rounds):
        raw_us, via_us = trips(raw, a.trips), trips(via, a.trips)
        rate = throughput(via, a.jobs, a.window)
        print("%5d  %6.1f  %15.1f  %5.2f  %16.0f" % (r + 1, raw_us, via_us, via_us / raw_us, rate))
    for p in procs:
        p.terminate()


if __name__ == "__main__":
    main()
