"""A throwaway PKI for the local control plane (as controller-runtime's envtest does)."""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.directory / "admin.key"

    @property
    def kubelet_client_cert(self) -> Path:
        """The apiserver's client certificate towards kubelets (logs, exec, port-forward)."""
        return self.directory / "apiserver-kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.directory / "apiserver-kubelet-client.key"

    def node_cert(self, node: str) -> Path:
        """The kubelet's client certificate (``system:node:<node>`` in group ``system:nodes``)."""
        return self.directory / f"node-{node}.crt"

    def node_key(self, node: str) -> Path:
        return self.directory / f"node-{node}.key"

    def kubelet_serving_cert(self, node: str) -> Path:
        return self.directory / f"kubelet-{node}-serving.crt"

    def kubelet_serving_key(self, node: str) -> Path:
        return self.directory / f"kubelet-{node}-serving.key"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(common: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _issue(subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey,
           *, ca: bool = False, server_names: tuple[str, ...] = (), client: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server_names:
        alt: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if client:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def ensure_pki(directory: Path) -> Pki:
    """Create the CA, serving, admin-client and service-account keys once per run directory."""
    pki = Pki(directory)
    if pki.sa_pub.exists():
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("streamguard-dev-ca")
    ca = _issue(ca_name, ca_key, ca_name, ca_key, ca=True)
    server_key = _key()
    server = _issue(_name("kube-apiserver"), server_key, ca_name, ca_key,
                    server_names=("127.0.0.1", "localhost", "10.0.0.1", "kubernetes", "kubernetes.default",
                                  "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"))
    admin_key = _key()
    admin = _issue(_name("streamguard-admin", "system:masters"), admin_key, ca_name, ca_key, client=True)
    for path, cert in ((pki.ca_cert, ca), (pki.server_cert, server), (pki.admin_cert, admin)):
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pki.ca_key, ca_key)
    _write_key(pki.server_key, server_key)
    _write_key(pki.admin_key, admin_key)
    sa_key = _key()
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki


def _load_ca(pki: Pki) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, rsa.RSAPrivateKey):
        raise TypeError(f"{pki.ca_key} is not an RSA key")
    return ca, ca_key


def ensure_kubelet_client(pki: Pki) -> None:
    """Issue, once, the apiserver's client certificate towards kubelets (``system:masters``)."""
    if pki.kubelet_client_cert.exists():
        return
    ca, ca_key = _load_ca(pki)
    key = _key()
    subject = _name("kube-apiserver-kubelet-client", "system:masters")
    _save(pki.kubelet_client_cert, pki.kubelet_client_key, _issue(subject, key, ca.subject, ca_key, client=True), key)


def ensure_node_certs(pki: Pki, node: str, node_ip: str) -> None:
    """Issue, once per node IP, the node's client certificate (``system:node:<node>`` in ``system:nodes``)
    and the kubelet's serving certificate for ``node_ip``."""
    serving = pki.kubelet_serving_cert(node)
    if serving.exists() and pki.node_cert(node).exists():
        names = x509.load_pem_x509_certificate(serving.read_bytes()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        if ipaddress.ip_address(node_ip) in names.get_values_for_type(x509.IPAddress):
            return
    ca, ca_key = _load_ca(pki)
    key = _key()
    client = _issue(_name(f"system:node:{node}", "system:nodes"), key, ca.subject, ca_key, client=True)
    _save(pki.node_cert(node), pki.node_key(node), client, key)
    key = _key()
    server = _issue(_name(node), key, ca.subject, ca_key, server_names=(node_ip, "127.0.0.1", "localhost", node))
    _save(serving, pki.kubelet_serving_key(node), server, key)


def ensure_service_cert(pki: Pki, name: str, server_names: tuple[str, ...] = (),
                        client: bool = False) -> tuple[Path, Path]:
    """Issue, once, ``<name>.crt`` / ``<name>.key`` from the stack's CA: a serving certificate for
    ``server_names`` or a client certificate. Returns the certificate and key paths."""
    cert_path, key_path = pki.directory / f"{name}.crt", pki.directory / f"{name}.key"
    if not cert_path.exists():
        ca, ca_key = _load_ca(pki)
        key = _key()
        _save(cert_path, key_path, _issue(_name(name), key, ca.subject, ca_key, server_names=server_names,
                                          client=client), key)
    return cert_path, key_path


def _save(cert_path: Path, key_path: Path, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def kubeconfig(pki: Pki, server: str, cert: Path | None = None, key: Path | None = None) -> str:
    """A kubeconfig (YAML) with file references to the PKI: the admin's, or the given client certificate's."""
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: streamguard-dev\n  cluster:\n    server: {server}\n"
        f"    certificate-authority: {pki.ca_cert}\n"
        f"users:\n- name: admin\n  user:\n    client-certificate: {cert or pki.admin_cert}\n"
        f"    client-key: {key or pki.admin_key}\n"
        "contexts:\n- name: streamguard-dev\n  context:\n    cluster: streamguard-dev\n    user: admin\n"
        "    namespace: default\n"
        "current-context: streamguard-dev\n"
    )
