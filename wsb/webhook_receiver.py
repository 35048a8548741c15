#!/usr/bin/env python3
"""A WSB webhook receiver in Python's standard library, for rehearsing against dfdg-mock.

It serves HTTPS with its own server certificate, requires a client certificate from the CA
and accepts exactly STAR's (by SHA-256 thumbprint of star.crt), answers 200 to every message,
also to a repeat of one it already has (STAR delivers at least once), and prints each one.
"""
import argparse, hashlib, json, ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
options.add_argument("--port", type=int, default=9443, help="0: any free port")
options.add_argument("--cert", default="webhook.crt", help="server certificate (then CA)")
options.add_argument("--key", default="webhook.key")
options.add_argument("--ca", default="ca.crt", help="the CA of STAR's certificate")
options.add_argument("--star", default="star.crt", help="STAR's sending certificate")
args = options.parse_args()
with open(args.star) as pem:
    STAR = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.read())).hexdigest()
seen = set()


class Webhook(BaseHTTPRequestHandler):
    def do_POST(self):
        peer = self.connection.getpeercert(binary_form=True)
        if hashlib.sha256(peer).hexdigest() != STAR:
            return self.send_error(403, "only STAR's certificate may push")
        try:
            message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            meta = message["metadata"]
        except (TypeError, ValueError, KeyError):
            return self.send_error(400, "not a WSB message")
        repeat = meta["beskedId"] in seen
        seen.add(meta["beskedId"])
        print("duplicate" if repeat else "received", self.path, meta["beskedId"],
              meta["EntitetNavn"], meta.get("Identifikation"), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(args.cert, args.key)
context.load_verify_locations(args.ca)
context.verify_mode = ssl.CERT_REQUIRED
server = ThreadingHTTPServer(("127.0.0.1", args.port), Webhook)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(f"listening on https://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
