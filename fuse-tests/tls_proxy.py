"""An HTTPS front for a plain-HTTP S3 server, as a reverse proxy terminates TLS in front of
Garage in a real deployment. Used by the Garage tests (fuse-tests/s3_garage.rs).

Usage: tls_proxy.py CERT KEY TARGET_PORT [close|answer]
Listens on a free port of 127.0.0.1, prints "listening PORT", and forwards each TLS
connection's bytes to 127.0.0.1:TARGET_PORT and back. A client that speaks plain HTTP to it
gets what a real front gives: `close` hangs up (a TLS library's failed handshake), `answer`
replies with nginx's 400 "The plain HTTP request was sent to HTTPS port".
"""

import socket
import ssl
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


PLAIN_400 = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nConnection: close\r\n"
             b"Content-Length: 62\r\n\r\n<html>The plain HTTP request was sent to HTTPS port</html>\r\n\r\n")


def serve(conn, ctx, target, mode):
    if mode == "answer":
        try:
            first = conn.recv(1, socket.MSG_PEEK)
        except OSError:
            first = b""
        if first and first != b"\x16":
            try:
                conn.recv(65536)
                conn.sendall(PLAIN_400)
            except OSError:
                pass
            conn.close()
            return
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError):
        conn.close()  # a client that does not speak TLS: the handshake fails, as in nginx
        return
    up = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=pump, args=(tls, up), daemon=True).start()
    pump(up, tls)


def main():
    cert, key, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "close"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    print(f"listening {lsock.getsockname()[1]}", flush=True)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn, ctx, target, mode), daemon=True).start()


if __name__ == "__main__":
    main()
