"""The stack's secured entrances, an option for private stacks: a Kafka SASL_SSL listener (SCRAM-SHA-512) and
the registry over HTTPS only with HTTP basic authentication required, both with certificates from the stack's CA.

Apicurio Registry 3.3 checks basic credentials against Quarkus' embedded user realm (enabled in its build),
without an OIDC server. TLS client authentication (mTLS) cannot be switched on in the released build:
``quarkus.http.ssl.client-auth`` is fixed at build time to ``NONE``. The clients support both
(:class:`~streamguard.clientsecurity.RegistrySecurity`). Kafka's plain listeners stay as they are: the
stack's own tools and readiness probes keep using them.
"""

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streamguard import clientsecurity
from streamguard.clientsecurity import KafkaEndpoint, KafkaSecurity, RegistrySecurity
from streamguard.contracts.registry import API_PATH
from streamguard.devstack.certs import Pki, ensure_service_cert

SECURED_FILE = "secured.json"
KAFKA_USER = "streamguard"
REGISTRY_USER = "streamguard"
LOCAL_NAMES = ("127.0.0.1", "localhost")
SECURED_PORTS = ("kafka-sasl", "registry-tls")


@dataclass(frozen=True)
class Secured:
    """Where the secured entrances listen and what a client needs to pass them (``secured.json``, mode 0600)."""

    kafka_port: int
    registry_port: int
    username: str
    password: str = field(repr=False)
    ca_file: str
    broker_cert: str
    broker_key: str
    registry_cert: str
    registry_key: str
    registry_username: str
    registry_password: str = field(repr=False)

    @property
    def kafka(self) -> KafkaEndpoint:
        return KafkaEndpoint(f"127.0.0.1:{self.kafka_port}", KafkaSecurity(
            protocol="SASL_SSL", mechanism="SCRAM-SHA-512", username=self.username, password=self.password,
            ca_file=self.ca_file))

    @property
    def registry_url(self) -> str:
        return f"https://127.0.0.1:{self.registry_port}{API_PATH}"

    @property
    def registry_security(self) -> RegistrySecurity:
        return RegistrySecurity(ca_file=self.ca_file, username=self.registry_username,
                                password=self.registry_password)

    def env(self) -> dict[str, str]:
        """The environment that points a workload (or the operator) at the secured entrances."""
        return {
            "STREAMGUARD_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            clientsecurity.KAFKA_PROTOCOL_ENV: "SASL_SSL",
            clientsecurity.KAFKA_MECHANISM_ENV: "SCRAM-SHA-512",
            clientsecurity.KAFKA_USERNAME_ENV: self.username,
            clientsecurity.KAFKA_PASSWORD_ENV: self.password,
            clientsecurity.KAFKA_CA_FILE_ENV: self.ca_file,
            "STREAMGUARD_REGISTRY_URL": self.registry_url,
            clientsecurity.REGISTRY_CA_FILE_ENV: self.ca_file,
            clientsecurity.REGISTRY_USERNAME_ENV: self.registry_username,
            clientsecurity.REGISTRY_PASSWORD_ENV: self.registry_password,
        }

    @classmethod
    def load(cls, run_dir: Path) -> "Secured":
        return cls(**json.loads((run_dir / SECURED_FILE).read_text()))


def ensure_secured(run_dir: Path, pki: Pki, ports: dict[str, int]) -> Secured:
    """The certificates (issued once) and the users' passwords (chosen once) of ``run_dir``'s stack."""
    path = run_dir / SECURED_FILE
    if path.exists():
        return Secured.load(run_dir)
    broker = ensure_service_cert(pki, "kafka-broker", server_names=LOCAL_NAMES)
    registry = ensure_service_cert(pki, "registry-server", server_names=LOCAL_NAMES)
    secured = Secured(
        kafka_port=ports["kafka-sasl"], registry_port=ports["registry-tls"], username=KAFKA_USER,
        password=secrets.token_urlsafe(24), ca_file=str(pki.ca_cert),
        broker_cert=str(broker[0]), broker_key=str(broker[1]), registry_cert=str(registry[0]),
        registry_key=str(registry[1]), registry_username=REGISTRY_USER, registry_password=secrets.token_urlsafe(24))
    path.touch(mode=0o600)
    path.write_text(json.dumps(asdict(secured), indent=2) + "\n")
    return secured
