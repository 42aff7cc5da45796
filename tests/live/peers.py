#!/usr/bin/env python3
"""The client and server programs of tests/live.rs, run inside the test's network namespaces.

Standard library only. Every wait has a timeout, and every server exits by itself after
--life seconds, so nothing outlives a failed test for long.

  serve --life S SPEC...    SPEC is tcp:IP:PORT:NAME or udp:IP:PORT:NAME. A TCP server answers
                            each line with "NAME peer=ADDR got=LINE" (an HTTP request gets an
                            HTTP response with that text); a UDP server answers each datagram
                            the same way.
  tcp IP PORT [--bind ADDR] [--timeout S]
                            connects, sends one line, prints the answer, or "timeout",
                            "refused" (RST) or "unreachable" (ICMP).
  udp IP PORT [--timeout S] sends one datagram, prints "from=ADDR:PORT answer" or "timeout".
  hold IP PORT GO [--timeout S]
                            connects, exchanges one line, prints it, waits until the file GO
                            exists, exchanges another line on the same connection, prints it.
"""
import errno
import os
import socket
import sys
import threading
import time


def answer(name, peer, line):
    return f"{name} peer={peer} got={line}"


def serve_tcp(ip, port, name):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(16)
    while True:
        conn, addr = s.accept()
        threading.Thread(target=tcp_conn, args=(conn, addr, name), daemon=True).start()


def tcp_conn(conn, addr, name):
    conn.settimeout(30)
    f = conn.makefile("rwb")
    try:
        for raw in f:
            line = raw.decode(errors="replace").strip()
            if line.startswith("GET "):
                # An HTTP request: read to the blank line, answer, close.
                for h in f:
                    if h in (b"\r\n", b"\n"):
                        break
                body = (answer(name, addr[0], "http") + "\n").encode()
                f.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                        + str(len(body)).encode() + b"\r\n\r\n" + body)
                f.flush()
                break
            f.write((answer(name, addr[0], line) + "\n").encode())
            f.flush()
    except OSError:
        pass
    finally:
        try:
            f.close()
            conn.close()
        except OSError:
            pass


def serve_udp(ip, port, name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    while True:
        data, addr = s.recvfrom(2048)
        s.sendto(answer(name, addr[0], data.decode(errors="replace").strip()).encode(), addr)


def opt(args, name, default):
    if name in args:
        i = args.index(name)
        v = args[i + 1]
        del args[i:i + 2]
        return v
    return default


def error_word(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
        return "refused"
    if getattr(e, "errno", None) in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    if isinstance(e, ConnectionResetError):
        return "reset"
    return f"error {e}"


def main():
    args = sys.argv[1:]
    cmd = args.pop(0)
    timeout = float(opt(args, "--timeout", "3"))
    if cmd == "serve":
        life = float(opt(args, "--life", "120"))
        for spec in args:
            proto, ip, port, name = spec.split(":")
            target = serve_tcp if proto == "tcp" else serve_udp
            threading.Thread(target=target, args=(ip, int(port), name), daemon=True).start()
        print("ready", flush=True)
        time.sleep(life)
    elif cmd == "tcp":
        bind = opt(args, "--bind", None)
        ip, port = args[0], int(args[1])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            if bind:
                s.bind((bind, 0))
            s.connect((ip, port))
            s.sendall(b"hello\n")
            print(s.makefile("rb").readline().decode().strip() or "closed")
        except OSError as e:
            print(error_word(e))
    elif cmd == "udp":
        ip, port = args[0], int(args[1])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        try:
            s.sendto(b"hello", (ip, port))
            data, addr = s.recvfrom(2048)
            print(f"from={addr[0]}:{addr[1]} {data.decode(errors='replace')}")
        except OSError as e:
            print(error_word(e))
    elif cmd == "hold":
        ip, port, go = args[0], int(args[1]), args[2]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((ip, port))
            f = s.makefile("rwb")
            f.write(b"before\n")
            f.flush()
            print(f.readline().decode().strip() or "closed", flush=True)
            deadline = time.time() + 30
            while not os.path.exists(go) and time.time() < deadline:
                time.sleep(0.05)
            f.write(b"after\n")
            f.flush()
            print(f.readline().decode().strip() or "closed", flush=True)
        except OSError as e:
            print(error_word(e), flush=True)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
