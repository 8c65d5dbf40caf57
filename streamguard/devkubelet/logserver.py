"""The one kubelet endpoint devkubelet serves: ``/containerLogs``, so ``kubectl logs [-f]`` works.

The apiserver proxies ``pods/log`` to ``https://<node InternalIP>:<kubeletEndpoint.Port>``. It does not
verify a kubelet's serving certificate unless told to, so a throwaway self-signed one is enough. The
server listens on 127.0.0.1 only and does not authenticate callers: a development convenience.
"""

import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LogPath = Callable[[str, str], Path | None]
"""(namespace, pod) -> the pod's log file, or None for a pod this node never ran."""
Running = Callable[[str, str], bool]
"""(namespace, pod) -> whether a container of the pod runs (``follow`` ends when none does)."""


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A serving certificate for 127.0.0.1 (written once, reused)."""
    cert, key_path = directory / "devkubelet.crt", directory / "devkubelet.key"
    if cert.exists() and key_path.exists():
        return cert, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devkubelet")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key_path


def _handler(log_path: LogPath, running: Running, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet: requests are not logged."""

        def do_GET(self) -> None:
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) < 3 or parts[0] != "containerLogs":
                self.send_error(404, "devkubelet serves /containerLogs only")
                return
            path = log_path(parts[1], parts[2])
            if path is None or not path.exists():
                self.send_error(404, f"no log for pod {parts[1]}/{parts[2]} on this node")
                return
            query = parse_qs(url.query)
            follow = query.get("follow", ["false"])[0] == "true"
            tail = int(query.get("tailLines", ["-1"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            with path.open("rb") as stream:
                lines = stream.readlines()
                self.wfile.write(b"".join(lines[-tail:] if tail >= 0 else lines))
                self.wfile.flush()
                while follow and not stop.is_set():
                    chunk = stream.read(65536)
                    if chunk:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    elif not running(parts[1], parts[2]):
                        return
                    else:
                        time.sleep(0.5)

    return Handler


class LogServer:
    def __init__(self, directory: Path, log_path: LogPath, running: Running) -> None:
        self.stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(log_path, running, self.stop))
        self.server.daemon_threads = True
        cert, key = self_signed(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="devkubelet-logs", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
